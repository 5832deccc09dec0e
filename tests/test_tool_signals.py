"""nnexp-predict and nnexp-report, stopped by Ctrl-C at any moment (while they import, read or write),
end with one line and exit code 130, never a traceback, and leave no file half-written.

Two moments each, recognised by what the tool does, never by a number of seconds: the moment its signal
handler is set (it still imports for seconds), and the moment its output's temporary file holds what it
writes (it makes it durable before renaming it; a tool that finished first is fine too)."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import copy_run


def tool(name: str) -> list[str]:
    if shutil.which(name):
        return [shutil.which(name)]
    function = name.removeprefix("nnexp-")
    return [sys.executable, "-c", f"from nnexp.cli.tools import {function}; {function}()"]


@pytest.fixture(scope="module")
def digits_run(session_runs, tmp_path_factory) -> Path:
    """A finished run, alone in its folder (nnexp-report reads every run beside it)."""
    return copy_run(session_runs("trainer.epochs=1"), tmp_path_factory.mktemp("runs") / "run")


def catches(pid: int, signum: int) -> bool:
    """Whether process `pid` has installed a handler for `signum` (Linux's /proc/PID/status)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:  # it has ended
        return False
    caught = int(next(line for line in status.splitlines() if line.startswith("SigCgt:")).split()[1], 16)
    return bool(caught >> (signum - 1) & 1)


def handler_is_set(process: subprocess.Popen[str], folder: Path) -> bool:
    return catches(process.pid, signal.SIGTERM)  # Python catches SIGINT itself; SIGTERM only the tool


def output_is_being_written(process: subprocess.Popen[str], folder: Path) -> bool:
    try:
        return any(path.stat().st_size > 0 for path in folder.glob(".*.tmp"))
    except FileNotFoundError:  # renamed into place meanwhile
        return False


def temporary_just_made(process: subprocess.Popen[str], folder: Path) -> bool:
    """The output's temporary exists, maybe still empty: the moment right after it is created."""
    return any(folder.glob(".*.tmp"))


MOMENTS = {
    "while it imports": handler_is_set,
    "as its temporary appears": temporary_just_made,
    "while it writes": output_is_being_written,
}


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the signal mask from /proc")
@pytest.mark.parametrize("name", ["nnexp-predict", "nnexp-report"])
def test_ctrl_c_at_any_moment_is_one_line_exit_130_and_no_half_written_file(name, digits_run, tmp_path):
    picture = tmp_path / "digit.png"
    pixels = np.zeros((8, 8), dtype=np.uint8)
    pixels[:, 3:5] = 200  # a light stroke on dark, top to bottom, as the run's images are: no warning
    Image.fromarray(pixels).save(picture)
    out = tmp_path / "out.csv" if name == "nnexp-predict" else tmp_path / "page.html"
    args = [str(digits_run), str(picture), "--out", str(out)] if name == "nnexp-predict" else [
        str(digits_run.parent), "--html", "--out", str(out)]  # fmt: skip
    stopped = 0
    for moment, reached in MOMENTS.items():
        out.unlink(missing_ok=True)
        process = subprocess.Popen([*tool(name), *args], cwd=tmp_path, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE, text=True)  # fmt: skip
        deadline = time.monotonic() + 300  # a safety net, not a delay
        while not reached(process, tmp_path) and process.poll() is None:
            assert time.monotonic() < deadline, f"{moment}: never came"
            time.sleep(0.0005)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=120)
        assert "Traceback" not in err, err
        if moment == "while it imports":  # the handler is set: the tool's own answer, whatever the machine
            assert process.returncode == 130, err
        if process.returncode == 130:
            stopped += 1
            assert err.endswith(f"{name}: interrupted by SIGINT\n") and err.count("\n") == 1, err
        elif process.returncode == -signal.SIGINT:
            # After Python took its handlers down at exit (the file was written whole by then): the
            # signal's own default, silently.
            assert err == "" and (not out.exists() or out.stat().st_size > 0)
        else:
            assert process.returncode == 0, err  # it had finished before the signal came
        assert not list(tmp_path.glob(".*.tmp")), f"{moment}: a half-written file was left"
    assert stopped, "the signal never came while the tool ran"
