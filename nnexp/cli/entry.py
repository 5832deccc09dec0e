"""The `nnexp` console script's first step: Ctrl-C and SIGTERM are answered from the first instant.

Python's own answer to a Ctrl-C while modules load is a KeyboardInterrupt traceback. nnexp enters the
STARTING state of its stop controller (nnexp.stop) before anything heavy is imported (only the
standard-library folder hooks come first, so the answer finds them whole); the command itself (and Hydra,
and torch) load after.

It is also the last moment to tell OpenMP how idle threads wait (nnexp/train/threads.py): the runtime
torch loads reads OMP_WAIT_POLICY once, when torch is imported.
"""

from __future__ import annotations

import os
import signal
import sys

from nnexp import stop  # standard library only, as the hooks are
from nnexp.cli.hydra_hooks import NOTHING_KEPT, release_unstarted_dirs
from nnexp.cli.launch import keep_other_ranks_out  # standard library only
from nnexp.train.threads import wait_passively_if_shared  # standard library only until a run starts


def main() -> None:
    stop.enter(stop.State.STARTING, on_stop=stop_before_the_run)  # a run enters its own states above it
    # Idle OpenMP threads sleep instead of spinning when other work shares the cores (a user's own
    # OMP_WAIT_POLICY wins); sweep jobs inherit the environment.
    wait_passively_if_shared(os.environ)
    sys.argv[1:] = keep_other_ranks_out(sys.argv[1:], os.environ)  # torchrun: the run folder is rank 0's
    from nnexp.cli.command import main as command

    command()


def stop_before_the_run(signum: int) -> None:
    """SIGINT/SIGTERM while nnexp starts (imports, composing, claiming the folder): there is nothing to
    save yet. Remove the folder claimed for the run, say so in one line, and exit with the signal's code.

    No exception is raised: one raised inside an import or Hydra's set-up surfaces as a stranger error.
    Nothing is imported either: a module interrupted half-way through its import cannot be imported again.
    """
    try:
        released = release_unstarted_dirs()
    except OSError:  # a folder already gone: exit all the same
        released = []
    said = f"nnexp: interrupted by {signal.Signals(signum).name}"
    said += f" {NOTHING_KEPT}\n" if released else "\n"
    os.write(2, said.encode())
    os._exit(128 + signum)
