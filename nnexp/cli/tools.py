"""The console scripts beside `nnexp` (nnexp-predict, nnexp-report, nnexp-generate): a Ctrl-C or SIGTERM
at any moment, imports included, ends them with one line and the signal's exit code, never a traceback.

The handler raises SystemExit, which Python prints nothing for, so `finally` blocks still run: a file
being written is removed rather than left half-written (see the tools' write functions).
"""

from __future__ import annotations

import importlib
import signal
import sys
from typing import Any


def _run(name: str, module: str, function: str) -> None:
    def stop(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not interrupt the clean-up
        sys.stderr.write(f"{name}: interrupted by {signal.Signals(signum).name}\n")
        raise SystemExit(128 + signum)

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, stop)
    getattr(importlib.import_module(module), function)()


def predict() -> None:
    _run("nnexp-predict", "nnexp.look.predict", "console_main")


def report() -> None:
    _run("nnexp-report", "nnexp.look.report", "console_main")


def generate() -> None:
    _run("nnexp-generate", "nnexp.look.generate", "main")
