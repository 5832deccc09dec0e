"""A function's answer worked out in a forked child on the other core while the run goes on.

For work that is all CPU and needs nothing but what the process already holds: the logistic-regression
baseline (scikit-learn's import and fit, ~1.3 s on the default run) while the run builds its model and
imports torch's compiler, when one core is idle; the views' pictures while the learning curves are drawn
here. `in_child(work)` forks at once; `result()` waits for the child and unpickles its answer. Where there
is no fork to trust (not Linux, or CUDA started: a forked child cannot use it), where the fork fails, or
where the child dies without an answer, `result()` runs `work` in this process instead: the same answer,
only later. (Standard library only, and stop.py; torch is looked for, never imported.)

The child answers through a pipe: it closes the descriptors registered with `close_in_children` (a run
folder's lock, so the lock goes with the parent), uses one torch thread (the parent's OpenMP threads are
not in the child: a parallel region would wait for them forever), ignores the stop signals (the parent
answers them, then cancels it with SIGALRM, which the kernel also sends if the parent is killed), and
leaves with os._exit (no atexit handler, no buffer of the parent's flushed twice). What it logs comes
back with its answer and is logged here, in order.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import select
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from nnexp.atomic import remove_unfinished
from nnexp.stop import (
    PREEMPTION_SIGNALS,
    STOP_SIGNALS,
    answer_a_swallowed_stop,
    asked_to_stop,
    in_forked_child,
)

T = TypeVar("T")

# Descriptors a child must not keep: a run folder's lock (flock belongs to the open file, which a child
# shares), else held on by a child after its parent ended. The others stay open: an open font file of
# matplotlib's, cached by the parent, is read again by the child.
_CLOSED_IN_CHILDREN: set[int] = set()
_FINISHED_FIRST: list[threading.Thread] = []
CANCEL_GRACE_S = 5.0  # a child drawing a picture finishes the one it is on within this
CANCEL = signal.SIGALRM  # what cancel() asks a child to leave with: nothing else sends it to a process group
_HELD_WHILE_FORKING = {*STOP_SIGNALS, *PREEMPTION_SIGNALS, CANCEL}
_PR_SET_PDEATHSIG = 1  # linux/prctl.h: the signal a process gets when its parent ends
POLL_S = 0.5  # how often a wait looks at whether the child still uses the CPU
STALLED_S = 10.0  # a child that used no CPU for this long is waiting for something that will not come

log = logging.getLogger("nnexp")


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[tuple[str, int, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((record.name, record.levelno, record.getMessage()))


class InChild(Generic[T]):
    """`work()`'s answer, worked out in a forked child; see the module's text."""

    def __init__(self, work: Callable[[], T]) -> None:
        self._work = work
        self._pid: int | None = None
        self._reader: int | None = None
        if not _can_fork():
            return
        for thread in _FINISHED_FIRST:
            if thread is not threading.current_thread():
                thread.join()
        _FINISHED_FIRST[:] = [thread for thread in _FINISHED_FIRST if thread.is_alive()]
        reader, writer = os.pipe()
        parent = os.getpid()
        # A stop signal's answer (an exception) raised in fork()'s own callbacks (logging's) would be
        # swallowed there, and Ctrl-C lost. This thread holds the signals back while it forks; one that
        # another thread (torch's) took is answered from what it recorded. Either way the answer comes
        # in the parent, once the child is known and can be cancelled.
        asked = asked_to_stop()
        unmasked = signal.pthread_sigmask(signal.SIG_BLOCK, _HELD_WHILE_FORKING)
        try:
            with warnings.catch_warnings():  # Python 3.12 warns of fork() with threads (torch's)
                warnings.simplefilter("ignore", DeprecationWarning)
                pid = os.fork()
        except OSError:  # no memory or process left for a child: worked out here, later
            os.close(reader)
            os.close(writer)
            signal.pthread_sigmask(signal.SIG_SETMASK, unmasked)
            return
        if pid == 0:
            os.close(reader)  # the parent's alone: a parent gone, the child's writes fail, it leaves
            _child(work, writer, parent, unmasked)  # never returns
        os.close(writer)
        self._pid, self._reader = pid, reader
        try:
            signal.pthread_sigmask(signal.SIG_SETMASK, unmasked)  # a signal held back is answered here
            answer_a_swallowed_stop(asked)
        except BaseException:
            self.cancel()
            raise

    def result(self) -> T:
        """The child's answer (waits for it); `work()` run here when the child gave none."""
        answer = self._collect()
        if answer is None:
            return self._work()
        for name, level, message in answer[1]:
            logging.getLogger(name).log(level, "%s", message)
        if isinstance(answer[0], BaseException):
            raise answer[0]
        return answer[0]

    def cancel(self) -> None:
        """Stop the child, if it still runs, and reap it. It is asked first (CANCEL: it leaves as a
        signal's SystemExit would, so a file it was writing is removed whole), then killed."""
        if self._pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self._pid, CANCEL)
        deadline = time.monotonic() + CANCEL_GRACE_S
        while time.monotonic() < deadline:
            if _ended(self._pid, wait=False):
                self._pid = None
                break
            time.sleep(0.005)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._pid, signal.SIGKILL)
            _ended(self._pid, wait=True)
            self._pid = None
        if self._reader is not None:
            os.close(self._reader)
            self._reader = None

    def _collect(self) -> tuple[object, list[tuple[str, int, str]]] | None:
        """The child's answer, once it has written it all; None when it gave none, or when it stopped
        using the CPU for STALLED_S before it had (a lock another thread of the parent held as it forked:
        the child would wait for ever). Interrupted (a stop signal), the child is left for `cancel()`."""
        if self._pid is None or self._reader is None:
            return None
        chunks, ticks, quiet_since = [], _cpu_ticks(self._pid), time.monotonic()
        while True:
            if select.select([self._reader], [], [], POLL_S)[0]:
                chunk = os.read(self._reader, 1 << 16)
                if not chunk:
                    break
                chunks.append(chunk)
                continue
            now = _cpu_ticks(self._pid)
            if now != ticks:
                ticks, quiet_since = now, time.monotonic()
            elif time.monotonic() - quiet_since > STALLED_S:
                log.debug("a forked child stalled (pid %d): its work is done here instead", self._pid)
                self.cancel()
                return None
        os.close(self._reader)
        self._reader = None
        _ended(self._pid, wait=True)
        self._pid = None
        try:
            return pickle.loads(b"".join(chunks))
        except Exception:  # the child died before it finished its answer
            return None

    def __del__(self) -> None:  # a run that failed before asking leaves no zombie behind
        if getattr(self, "_pid", None) is not None:
            with contextlib.suppress(Exception):
                self.cancel()


def finish_before_forking(thread: threading.Thread) -> None:
    """`thread` (an import in the background) is waited for before any fork: a process forked while
    another of its threads imports finds that module's lock held, for ever."""
    _FINISHED_FIRST.append(thread)


def close_in_children(descriptor: int) -> None:
    """A forked child closes `descriptor` as it starts (a lock's), until `keep_in_children(descriptor)`."""
    _CLOSED_IN_CHILDREN.add(descriptor)


def keep_in_children(descriptor: int) -> None:
    """`descriptor` is no longer closed in forked children (call it before closing it here)."""
    _CLOSED_IN_CHILDREN.discard(descriptor)


def in_child(work: Callable[[], T]) -> InChild[T]:
    """Start `work` in a forked child now; its answer is `.result()`."""
    return InChild(work)


def _ended(pid: int, wait: bool) -> bool:
    """Whether the child `pid` has ended, reaping it (waiting for it with `wait`). Where SIGCHLD is ignored
    (inherited from whoever started this process) the kernel reaps children itself: ECHILD, ended."""
    try:
        return os.waitpid(pid, 0 if wait else os.WNOHANG)[0] != 0
    except ChildProcessError:
        return True


def _leave_with(parent: int) -> None:
    """Have the kernel send CANCEL to this child when the run's process ends (SIGKILL leaves it no time to
    cancel its children): no picture is written into a folder after its run has gone."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, CANCEL, 0, 0, 0)
    if os.getppid() != parent:  # it ended before the kernel was told
        raise SystemExit(1)


def _cpu_ticks(pid: int) -> int | None:
    """The CPU time `pid` has used (user + system, in clock ticks), from /proc; None where unreadable."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return None


def _can_fork() -> bool:
    if not (sys.platform.startswith("linux") and hasattr(os, "fork")):  # macOS: unsafe with its libraries
        return False
    torch = sys.modules.get("torch")
    # A forked child cannot use the CUDA its parent started: a GPU run works everything out here.
    return torch is None or not torch.cuda.is_initialized()


def _leave_if_cancel_was_swallowed(unraisable: Any) -> None:
    """The child's answer to CANCEL (SystemExit) raised where Python swallows exceptions (a matplotlib
    weakref callback, seen by a hostile user): it would draw on, and say "Exception ignored". It leaves at
    once instead, removing the picture it was writing."""
    if isinstance(unraisable.exc_value, SystemExit):
        remove_unfinished()
        os._exit(1)
    sys.__unraisablehook__(unraisable)


def _child(work: Callable[[], object], writer: int, parent: int, unmasked: set[signal.Signals]) -> None:
    try:
        in_forked_child(CANCEL)  # the stop signals are the parent's; CANCEL: leave as a stopped run would
        sys.unraisablehook = _leave_if_cancel_was_swallowed
        signal.pthread_sigmask(signal.SIG_SETMASK, unmasked)  # held back while forking
        _leave_with(parent)
        torch = sys.modules.get("torch")
        if torch is not None:  # torch's OpenMP pool is the parent's: its threads are not in this process
            torch.set_num_threads(1)
        for descriptor in _CLOSED_IN_CHILDREN:
            with contextlib.suppress(OSError):
                os.close(descriptor)
        collect = _Collect()
        root = logging.getLogger()
        for logger in [root, *logging.Logger.manager.loggerDict.values()]:
            if isinstance(logger, logging.Logger):
                logger.handlers = []
                logger.propagate = logger is not root
        root.addHandler(collect)  # the levels stay the parent's: only what it would log comes back
        logging.captureWarnings(True)  # a library's warnings come back as log lines too
        try:
            answer: object = work()
        except Exception as error:
            answer = error
        try:
            data = pickle.dumps((answer, collect.records))
        except Exception as error:  # an answer that does not pickle: said as its error
            data = pickle.dumps((RuntimeError(f"{type(error).__name__}: {error}"), collect.records))
        view = memoryview(data)
        while view:
            view = view[os.write(writer, view) :]
    finally:
        os._exit(0)


__all__ = ["InChild", "close_in_children", "finish_before_forking", "in_child", "keep_in_children"]
