"""The `nnexp` console script's first step: Ctrl-C and SIGTERM are answered from the first instant.

Python's own answer to a Ctrl-C while modules load is a KeyboardInterrupt traceback. nnexp enters the
STARTING state of its stop controller (nnexp.stop) before anything heavy is imported (only the
standard-library folder hooks come first, so the answer finds them whole); the command itself (and Hydra,
and torch) load after.

It is also the last moment to tell OpenMP how idle threads wait (nnexp/train/threads.py): the runtime
torch loads reads OMP_WAIT_POLICY once, when torch is imported.

`console` is the process's own entry (the `nnexp` script, `python -m nnexp`): `main`, then a quick exit.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import sys
import threading
from typing import NoReturn

from nnexp import stop  # standard library only, as the hooks are
from nnexp.cli.hydra_hooks import NOTHING_KEPT, release_unstarted_dirs, started_sweeps
from nnexp.cli.launch import keep_other_ranks_out  # standard library only
from nnexp.errors import command_line  # standard library only
from nnexp.train.threads import wait_passively_if_shared  # standard library only until a run starts


def main() -> None:
    stop.enter(stop.State.STARTING, on_stop=stop_before_the_run)  # a run enters its own states above it
    open_closed_standard_streams()
    # Idle OpenMP threads sleep instead of spinning when other work shares the cores (a user's own
    # OMP_WAIT_POLICY wins); sweep jobs inherit the environment.
    wait_passively_if_shared(os.environ)
    sys.argv[1:] = keep_other_ranks_out(sys.argv[1:], os.environ)  # torchrun: the run folder is rank 0's
    from nnexp.cli.command import main as command

    command()


def console() -> NoReturn:
    """`main`, then leave the process without tearing the interpreter down.

    Python's own exit frees module after module: with torch and its compiler loaded that takes 0.5-0.8 s
    after the last line is printed (benchmarks/RESULTS.md, "sixth session"), in every run and once per
    sweep. What that exit does for others is done first (the atexit callbacks: logging's, a coverage
    tool's; the standard streams flushed), then os._exit. A bug's traceback leaves the usual way.
    """
    try:
        main()
    except SystemExit as leaving:
        code = leaving.code
    else:
        code = 0
    # A launcher's threads to join first: Python's own exit does that. A daemon thread (matplotlib's import
    # in the background, say) is left behind by either; Python's teardown of the modules around it could
    # abort the process ("terminate called without an active exception", exit -6, once in a CI suite).
    others = [thread for thread in threading.enumerate() if thread is not threading.current_thread()]
    if any(thread.is_alive() and not thread.daemon for thread in others):
        sys.exit(code)
    atexit._run_exitfuncs()
    os._exit(_flushed(_exit_status(code)))


def open_closed_standard_streams() -> None:
    """Started with a standard stream closed (`nnexp >&-`, `2>&-`): the null device takes its place.

    Python leaves sys.stdout None then, and `print` says nothing but a console's write fails. Worse, the
    next file opened would get descriptor 1 and receive what is written to the console."""
    for fd, name in ((0, "stdin"), (1, "stdout"), (2, "stderr")):
        try:
            os.fstat(fd)
            continue
        except OSError:
            pass
        null = os.open(os.devnull, os.O_RDWR)  # the lowest free descriptor: `fd`, if those below are open
        if null != fd:
            os.dup2(null, fd)
            os.close(null)
        if getattr(sys, name) is None:
            setattr(sys, name, open(fd, "r" if fd == 0 else "w", closefd=False))  # noqa: SIM115 - for good


def _exit_status(code: object) -> int:
    """As Python turns SystemExit's code into the process's status."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    sys.stderr.write(f"{code}\n")
    return 1


def _flushed(status: int) -> int:
    """Flush stdout and stderr; stdout a closed pipe: status 120, as Python's own exit gives."""
    try:
        if sys.stdout is not None:
            sys.stdout.flush()
    except (OSError, ValueError):
        status = status or 120
    with contextlib.suppress(OSError, ValueError):
        if sys.stderr is not None:
            sys.stderr.flush()
    return status


def stop_before_the_run(signum: int) -> None:
    """SIGINT/SIGTERM while nnexp starts (imports, composing, claiming the folder) or between two jobs of a
    sweep: there is nothing to save yet. Remove the folder claimed for the run, say so in one line, and exit
    with the signal's code.

    No exception is raised: one raised inside an import or Hydra's set-up surfaces as a stranger error.
    Nothing is imported either: a module interrupted half-way through its import cannot be imported again.
    """
    os.write(2, f"{said_at_stop(signum)}\n".encode())
    os._exit(128 + signum)


def said_at_stop(signum: int) -> str:
    """Release the folders no run has written into, and the line that says what the stop left: nothing,
    or, between two jobs of a sweep, the sweep to resume."""
    try:
        released = release_unstarted_dirs()
        sweeps = started_sweeps()
    except OSError:  # a folder already gone: exit all the same
        released, sweeps = [], []
    said = f"nnexp: interrupted by {signal.Signals(signum).name}"
    if released:
        said += f" {NOTHING_KEPT}"
    if sweeps:
        said += "; resume the sweep with: " + command_line("nnexp", "-m", f"resume={sweeps[0]}")
    return said
