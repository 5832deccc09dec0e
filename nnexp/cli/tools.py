"""The console scripts beside `nnexp` (nnexp-predict, nnexp-report, nnexp-generate): a Ctrl-C or SIGTERM
at any moment, imports included, ends them with one line and the signal's exit code, never a traceback.

Each enters the TOOL state of the stop controller (nnexp.stop) first: a signal raises SystemExit, which
Python prints nothing for, so `finally` blocks still run: a file being written is removed rather than left
half-written (see the tools' write functions); a second Ctrl-C does not interrupt that clean-up.
"""

from __future__ import annotations

import importlib

from nnexp import stop


def _run(name: str, module: str, function: str) -> None:
    stop.enter(stop.State.TOOL, name=name)  # before the tool's module loads: it imports for seconds
    getattr(importlib.import_module(module), function)()


def predict() -> None:
    _run("nnexp-predict", "nnexp.look.predict", "console_main")


def report() -> None:
    _run("nnexp-report", "nnexp.look.report", "console_main")


def generate() -> None:
    _run("nnexp-generate", "nnexp.look.generate", "main")
