"""A signal at any moment of a run (or of its resume) leaves no traceback, and every folder it touched is
one that `nnexp resume=` accepts, or refuses in one line.

The signals go to real `nnexp` processes, each at a moment the test waits for by what the process writes or
sets up, never by a number of seconds. What `nnexp resume=` then makes of each folder is checked in this
process: conftest's `resume_in_process` runs what the command runs and raises the error it would print.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conftest import NNEXP, copy_run, read_summary, resume_in_process, run_folders
from nnexp.errors import UserError

SHORT_RUN = ["trainer.epochs=3", "trainer.batch_size=8"]  # a few seconds from start to end


def start(cwd: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([*NNEXP, *args], cwd=cwd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip


def wait_until(process: subprocess.Popen[str], reached: Callable[[], bool]) -> None:
    """Poll until `reached()` or the process has ended (a moment it ran past); a safety net, not a delay."""
    deadline = time.monotonic() + 300
    while not reached() and process.poll() is None:
        assert time.monotonic() < deadline, "the moment never came"
        time.sleep(0.002)


def data_rows(root: Path) -> int:
    """Epoch rows in the metrics.csv of the run under root/outputs (0 before there is one)."""
    counts = [path.read_text().count("\n") - 1 for path in (root / "outputs").rglob("metrics.csv")]
    return max(counts, default=0)


def assert_resume_accepts_or_refuses_in_one_line(folder: Path, *args: str) -> None:
    try:
        resume_in_process(folder, *args)
    except UserError as error:  # the command prints it as one line, exit code 2
        assert error.exit_code == 2 and "\n" not in str(error), (error.exit_code, str(error))
    else:
        assert read_summary(folder)["status"] == "completed"


def catches(pid: int, signum: int) -> bool:
    """Whether process `pid` has installed a handler for `signum` (Linux's /proc/PID/status)."""
    status = Path(f"/proc/{pid}/status").read_text()
    caught = int(next(line for line in status.splitlines() if line.startswith("SigCgt:")).split()[1], 16)
    return bool(caught >> (signum - 1) & 1)


# Representative moments of a run, each recognised by what the run has written by then.
MOMENTS: dict[str, Callable[[Path], bool]] = {
    # Hydra has claimed the run folder: it writes its records, nnexp sets the run up
    "its folder is claimed": lambda root: any((root / "outputs").glob("*/*")),
    "it trains": lambda root: data_rows(root) >= 1,
    # the last epoch is recorded: evaluation, the plots and the page (or it has finished)
    "its last epoch is recorded": lambda root: data_rows(root) >= 3,
}


@pytest.mark.slow
@pytest.mark.parametrize("moment", MOMENTS)
def test_sigterm_at_any_moment_leaves_a_folder_resume_accepts_or_refuses_in_one_line(tmp_path, moment):
    process = start(tmp_path, *SHORT_RUN)
    wait_until(process, lambda: MOMENTS[moment](tmp_path))
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=300)
    assert "Traceback" not in stderr
    assert process.returncode in (143, 0), stderr  # 0: it had finished
    assert len(stderr.strip().splitlines()) <= 1, stderr
    if "nothing was kept" in stderr:
        assert not run_folders(tmp_path)
    for folder in run_folders(tmp_path):
        assert_resume_accepts_or_refuses_in_one_line(folder)


@pytest.mark.slow
def test_sigterm_while_a_run_resumes_leaves_it_resumable(tmp_path, session_runs):
    """Stopped once the resume has begun to change the folder (its forced config saved, its summary
    marked resumed): a resume with the same settings still finishes all four epochs."""
    folder = copy_run(session_runs("trainer.epochs=1"), tmp_path / "run")
    more = ["trainer.epochs=4", "force=true"]
    process = start(tmp_path, f"resume={folder}", *more)
    wait_until(process, lambda: "resumed_at" in (folder / "summary.json").read_text())
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=300)
    assert "Traceback" not in stderr and process.returncode in (143, 0), stderr
    assert read_summary(folder)["status"] in ("interrupted", "completed")
    assert_resume_accepts_or_refuses_in_one_line(folder, *more)
    assert read_summary(folder)["epochs_completed"] == 4


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the signal mask from /proc")
def test_ctrl_c_from_nnexp_s_first_line_on_is_one_line_and_its_exit_code(tmp_path):
    """Before nnexp's first line, Python itself is starting and answers as it does for any program (it
    takes a few tens of milliseconds); from then on a Ctrl-C is nnexp's: imports, Hydra, the folder. Sent
    at that first moment, while nnexp still imports."""
    process = start(tmp_path, *SHORT_RUN)
    # Python catches SIGINT itself; SIGTERM only nnexp
    wait_until(process, lambda: catches(process.pid, signal.SIGTERM))
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 130 and "Traceback" not in stderr, stderr
    assert stderr.startswith("nnexp: interrupted by SIGINT") and len(stderr.splitlines()) == 1


@pytest.fixture
def silent_server() -> Iterator[socket.socket]:
    """A listening TCP port that never answers what it is asked: a tracking server that hangs."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(300)  # a safety net: accept() returns as soon as the run connects
    yield listener
    listener.close()


def test_sigterm_while_a_logger_waits_for_its_server_stops_at_once(tmp_path, silent_server):
    pytest.importorskip("mlflow")
    url = f"http://127.0.0.1:{silent_server.getsockname()[1]}"
    process = start(tmp_path, "logger=[csv,mlflow]", f"logger.mlflow.tracking_uri={url}", "trainer.epochs=1")
    try:
        asking, _ = silent_server.accept()  # the run has begun and MLflow waits for the server's answer
    except TimeoutError:
        process.kill()
        raise AssertionError(f"MLflow never asked the server: {process.communicate()[1]}") from None
    with asking:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)  # not MLflow's minutes of retries
    assert process.returncode == 143, stderr
    assert stderr == "nnexp: interrupted by SIGTERM before the run began; nothing was kept\n"
    assert run_folders(tmp_path) == []
