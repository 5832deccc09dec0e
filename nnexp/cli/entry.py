"""The `nnexp` console script's first step: Ctrl-C and SIGTERM are answered from the first instant.

Python's own answer to a Ctrl-C while modules load is a KeyboardInterrupt traceback. The handlers go in
before anything else is imported; the command itself (and Hydra, and torch) load after.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any


def main() -> None:
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, stop_before_the_run)  # the run installs its own (a clean stop) once it starts
    from nnexp.cli.command import main as command

    command()


def stop_before_the_run(signum: int, frame: Any) -> None:
    """SIGINT/SIGTERM while nnexp starts (imports, composing, claiming the folder): there is nothing to
    save yet. Remove the folder claimed for the run, say so in one line, and exit with the signal's code.

    No exception is raised: one raised inside an import or Hydra's set-up surfaces as a stranger error.
    Nothing is imported either: a module interrupted half-way through its import cannot be imported again.
    """
    # Not loaded yet, or loading now (no function yet): no folder was claimed.
    release = getattr(sys.modules.get("nnexp.cli.hydra_hooks"), "release_unstarted_dirs", None)
    try:
        released = release() if release is not None else []
    except OSError:  # a folder already gone: exit all the same
        released = []
    said = f"nnexp: interrupted by {signal.Signals(signum).name}"
    said += " before the run began; nothing was kept\n" if released else "\n"
    os.write(2, said.encode())
    os._exit(128 + signum)
