"""A GPU and a share of the CPU threads for each concurrent job of a parallel sweep.

Jobs a launcher runs at once (hydra/launcher=parallel, gpus, joblib) would otherwise all train on
`cuda:0` and each start one thread per core. Job N of a sweep running K jobs at once takes slot N mod K
(waiting while an earlier job still holds it), trains on GPU `slot mod G` of the G visible, and gets
F // K of the F cores other users' load leaves free as torch threads (trainer.threads=auto, the
default: nnexp/train/threads.py; with null C // K of the C cores; a number wins). On a machine without
a GPU only the threads are split. SLURM gives each submitit job its own GPUs and cores, so its jobs are
left alone.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

from nnexp.train import threads as torch_threads

log = logging.getLogger("nnexp")

FAKE_GPU_COUNT_ENV = "NNEXP_FAKE_GPU_COUNT"  # tests: plan for this many GPUs (nothing is placed on them)
_PARALLEL_LAUNCHERS = ("JoblibLauncher",)  # launchers that run several jobs on this machine at once
_current: dict[str, Any] | None = None  # what this process's running job was given


@dataclass(frozen=True)
class Assignment:
    worker: int  # the job's slot among the jobs running at once, 0 .. concurrent_jobs - 1
    concurrent_jobs: int
    device: str  # cuda:N, or the job's own device setting (cpu, auto) where no GPU is assigned
    threads: int  # torch CPU threads


def visible_gpus() -> int:
    """The CUDA GPUs this process sees ($NNEXP_FAKE_GPU_COUNT instead, when set, for tests)."""
    if os.environ.get(FAKE_GPU_COUNT_ENV):
        return int(os.environ[FAKE_GPU_COUNT_ENV])
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


cpu_cores = torch_threads.allowed_cores  # a taskset's or a container's CPU set, not the whole machine


def concurrent_jobs(launcher: Any) -> int:
    """How many jobs the sweep's launcher runs at once on this machine (1: one after another)."""
    target = str(launcher.get("_target_", "")) if launcher is not None else ""
    if not target.endswith(_PARALLEL_LAUNCHERS):
        return 1
    n_jobs = launcher.get("n_jobs")
    if n_jobs is None:
        return 1
    n_jobs = int(n_jobs)
    return n_jobs if n_jobs > 0 else max(1, (os.cpu_count() or 1) + 1 + n_jobs)  # joblib's -1: every core


def plan(job: int, concurrent: int, gpus: int, cores: int, device: str, threads: int | None) -> Assignment:
    """Job `job` of a sweep running `concurrent` jobs at once on `gpus` GPUs and `cores` cores."""
    worker = job % concurrent
    if gpus > 0 and device in ("auto", "cuda"):
        device = f"cuda:{worker % gpus}"
    return Assignment(worker, concurrent, device, threads or max(1, cores // concurrent))


@contextlib.contextmanager
def assigned(
    job: int, launcher: Any, sweep_dir: str, device: str, threads: int | str | None
) -> Iterator[None]:
    """Hold this job's slot while it runs, with its GPU and threads set for torch in this process."""
    global _current
    concurrent = concurrent_jobs(launcher)
    if concurrent == 1:  # one job at a time: it has the machine to itself, as a single run has
        yield
        return
    with _slot(sweep_dir, job % concurrent):
        share = job_threads(concurrent, threads)
        given = plan(job, concurrent, visible_gpus(), cpu_cores(), device, share.threads)
        import torch

        torch.set_num_threads(given.threads)
        if given.device.startswith("cuda:") and torch.cuda.is_available():
            index = int(given.device.split(":")[1])
            if index < torch.cuda.device_count():  # not a pretended GPU
                torch.cuda.set_device(index)  # where device=auto/cuda places the job's tensors
        _current = asdict(given)
        log.info("sweep job %d: worker %d of %d, %s, %d threads", job, given.worker, concurrent,
                 given.device, given.threads)  # fmt: skip
        try:
            with torch_threads.held(share):  # the run records this choice and keeps it
                yield
        finally:
            _current = None


def job_threads(concurrent: int, threads: int | str | None) -> torch_threads.Choice:
    """This job's share of the free cores (of all of them with trainer.threads=null), chosen once it holds its
    slot (a number in trainer.threads wins)."""
    if threads and threads != "auto":
        return torch_threads.Choice(int(threads), f"trainer.threads={int(threads)}")
    return torch_threads.split_between(concurrent, free_only=threads == "auto")


def job_assignment() -> dict[str, Any] | None:
    """What the running sweep job was given (for its summary.json); None outside a parallel sweep."""
    return dict(_current) if _current is not None else None


@contextlib.contextmanager
def _slot(sweep_dir: str, worker: int, poll_s: float = 0.1) -> Iterator[None]:
    """Hold slot `worker` of the sweep, waiting while another job holds it, so that two jobs never share
    a GPU even when they end out of turn. The slot is a name in Linux's abstract socket namespace: the
    kernel frees it when its process ends, however it ends, and nothing is written to disk."""
    if not sys.platform.startswith("linux"):
        yield
        return
    from nnexp.sweep.workers import sweep_is_gone

    key = hashlib.sha1(os.path.abspath(sweep_dir).encode()).hexdigest()[:20]
    holder = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        while True:
            try:
                holder.bind(f"\0nnexp-sweep-{key}-slot-{worker}")
                break
            except OSError:  # an earlier job still runs in this slot
                if sweep_is_gone():
                    break  # the job's own stop handling takes over
                time.sleep(poll_s)
        yield
    finally:
        holder.close()
