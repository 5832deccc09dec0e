"""Sweep workers that stop when their sweep is gone (imports nothing heavy: it runs on every command)."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger("nnexp")


SWEEP_PID_ENV = "NNEXP_SWEEP_PID"  # set by the sweep's own process, inherited by its workers
_watching = False
_sweep_gone = threading.Event()
_job_running = threading.Event()


def sweep_is_gone() -> bool:
    """True in a worker once its sweep's process has gone: it must start no further job."""
    return _sweep_gone.is_set()


@contextlib.contextmanager
def job_running() -> Iterator[None]:
    """Around a job in a sweep's worker: a worker whose sweep is gone leaves as soon as its job has ended."""
    _job_running.set()
    try:
        yield
    finally:
        _job_running.clear()


def stop_when_orphaned(sweep_pid: int, interval_s: float = 1.0, grace_s: float = 20.0) -> None:
    """In a sweep's worker process: once the sweep's process is gone, stop as on SIGTERM, then exit once
    the job has saved its checkpoint and ended (at most `grace_s` later).

    A joblib worker outlives a killed parent and would go on starting jobs nobody waits for, or wait
    for new ones that never come.
    """
    global _watching
    if _watching or sweep_pid == os.getpid():
        return
    _watching = True

    def watch() -> None:
        # Whether the sweep's process exists, not whether it is our parent: a submitit job's parent
        # is submitit's own controller, which stands between the sweep and the job.
        while _alive(sweep_pid):
            time.sleep(interval_s)
        log.warning("the sweep's process %d is gone: stopping this job", sweep_pid)
        _sweep_gone.set()
        os.kill(os.getpid(), signal.SIGTERM)
        given_up = time.monotonic() + grace_s
        while _job_running.is_set() and time.monotonic() < given_up:
            time.sleep(0.05)
        os._exit(128 + signal.SIGTERM)

    threading.Thread(target=watch, name="nnexp-orphan-watch", daemon=True).start()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed process stays a zombie until its parent reaps it
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True
