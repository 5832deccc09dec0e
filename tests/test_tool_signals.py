"""nnexp-predict and nnexp-report, stopped by Ctrl-C at any moment (while they import, read or write),
end with one line and exit code 130, never a traceback, and leave no file half-written."""

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

from conftest import run_folders, run_nnexp

DELAYS_S = (0.05, 0.4, 1.0, 2.0)  # while Python imports, while the tool reads the run, later


def tool(name: str) -> list[str]:
    if shutil.which(name):
        return [shutil.which(name)]
    function = name.removeprefix("nnexp-")
    return [sys.executable, "-c", f"from nnexp.cli.tools import {function}; {function}()"]


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("run")
    assert run_nnexp("trainer.epochs=1", cwd=root).returncode == 0
    [folder] = run_folders(root)
    return folder


@pytest.mark.parametrize("name", ["nnexp-predict", "nnexp-report"])
def test_ctrl_c_at_any_moment_is_one_line_exit_130_and_no_half_written_file(name, digits_run, tmp_path):
    picture = tmp_path / "digit.png"
    Image.fromarray(np.full((8, 8), 200, dtype=np.uint8)).save(picture)
    out = tmp_path / "out.csv" if name == "nnexp-predict" else tmp_path / "page.html"
    args = [str(digits_run), str(picture), "--out", str(out)] if name == "nnexp-predict" else [
        str(digits_run.parent), "--html", "--out", str(out)]  # fmt: skip
    stopped = 0
    for delay in DELAYS_S:
        out.unlink(missing_ok=True)
        process = subprocess.Popen([*tool(name), *args], cwd=tmp_path, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE, text=True)  # fmt: skip
        time.sleep(delay)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=120)
        assert "Traceback" not in err, err
        if process.returncode == 130:
            stopped += 1
            assert err.endswith(f"{name}: interrupted by SIGINT\n") and err.count("\n") == 1, err
        elif process.returncode == -signal.SIGINT:
            # Before Python had set its handlers up, or after it took them down at exit (the file was
            # written whole by then): the signal's own default, silently.
            assert err == "" and (not out.exists() or out.stat().st_size > 0)
        else:
            assert process.returncode == 0, err  # it had finished before the signal came
        assert not list(tmp_path.glob(".*.tmp")), "a half-written file was left"
    assert stopped, "the signal never came while the tool ran"
