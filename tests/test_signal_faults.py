"""A signal at any moment of a run (or of its resume) leaves no traceback, and every folder it touched is
one that `nnexp resume=` accepts, or refuses in one line."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import NNEXP, read_summary, run_folders, run_nnexp

SHORT_RUN = ["trainer.epochs=3", "trainer.batch_size=8"]  # about three seconds from start to end
# From the moment Python starts to well past the end of training: start-up, imports, composing the
# config, claiming the folder, the first summary, epochs, checkpoints, evaluation, plotting.
MOMENTS_S = [0.0, 0.05, 0.2, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 6.0]


def signal_after(delay_s: float, signum: int, args: list[str], cwd: Path) -> tuple[int, str]:
    process = subprocess.Popen([*NNEXP, *args], cwd=cwd, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)  # fmt: skip
    time.sleep(delay_s)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=300)
    return process.returncode, stderr


def assert_resume_accepts_or_refuses_in_one_line(folder: Path, cwd: Path, *args: str) -> None:
    resumed = run_nnexp(f"resume={folder}", *args, cwd=cwd)
    if resumed.returncode == 0:
        assert read_summary(folder)["status"] == "completed"
    else:
        assert resumed.returncode == 2, resumed.stderr[-2000:]
        assert len(resumed.stderr.strip().splitlines()) == 1, resumed.stderr


@pytest.mark.slow
@pytest.mark.parametrize("delay_s", MOMENTS_S)
def test_sigterm_at_any_moment_leaves_a_folder_resume_accepts_or_refuses_in_one_line(tmp_path, delay_s):
    code, stderr = signal_after(delay_s, signal.SIGTERM, SHORT_RUN, tmp_path)
    assert "Traceback" not in stderr
    # 0: it had finished; -15: Python had not started nnexp's code yet (killed as any program is).
    assert code in (143, 0, -signal.SIGTERM), stderr
    assert len(stderr.strip().splitlines()) <= 1, stderr
    for folder in run_folders(tmp_path):
        assert_resume_accepts_or_refuses_in_one_line(folder, tmp_path)
    if "nothing was kept" in stderr:
        assert not run_folders(tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("delay_s", [0.2, 1.0, 2.0, 3.0])
def test_sigterm_while_a_run_resumes_leaves_it_resumable(tmp_path, delay_s):
    first = run_nnexp("trainer.epochs=1", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    (folder,) = run_folders(tmp_path)
    more = ["trainer.epochs=4", "force=true"]
    code, stderr = signal_after(delay_s, signal.SIGTERM, [f"resume={folder}", *more], tmp_path)
    assert "Traceback" not in stderr and code in (143, 0), stderr
    assert read_summary(folder)["status"] in ("interrupted", "completed")
    assert_resume_accepts_or_refuses_in_one_line(folder, tmp_path, *more)
    assert read_summary(folder)["epochs_completed"] == 4


def catches(pid: int, signum: int) -> bool:
    """Whether process `pid` has installed a handler for `signum` (Linux's /proc/PID/status)."""
    status = Path(f"/proc/{pid}/status").read_text()
    caught = int(next(line for line in status.splitlines() if line.startswith("SigCgt:")).split()[1], 16)
    return bool(caught >> (signum - 1) & 1)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the signal mask from /proc")
@pytest.mark.parametrize("extra_delay_s", [0.0, 0.03, 0.1, 0.3])
def test_ctrl_c_from_nnexp_s_first_line_on_is_one_line_and_its_exit_code(tmp_path, extra_delay_s):
    """Before nnexp's first line, Python itself is starting and answers as it does for any program (it
    takes a few tens of milliseconds); from then on a Ctrl-C is nnexp's: imports, Hydra, the folder."""
    process = subprocess.Popen([*NNEXP, *SHORT_RUN], cwd=tmp_path, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 60
    while not catches(process.pid, signal.SIGTERM):  # Python catches SIGINT itself; SIGTERM only nnexp
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.001)
    time.sleep(extra_delay_s)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 130 and "Traceback" not in stderr, stderr
    assert stderr.startswith("nnexp: interrupted by SIGINT") and len(stderr.splitlines()) == 1


@pytest.fixture
def silent_server():
    """A TCP port that accepts connections and never answers: a tracking server that hangs."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    listener.close()


def test_sigterm_while_a_logger_waits_for_its_server_stops_at_once(tmp_path, silent_server):
    pytest.importorskip("mlflow")
    args = ["logger=[csv,mlflow]", f"logger.mlflow.tracking_uri={silent_server}", "trainer.epochs=1"]
    process = subprocess.Popen([*NNEXP, *args], cwd=tmp_path, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 120
    while not list((tmp_path / "outputs").rglob("summary.json")):  # the run has begun: MLflow is asked
        assert process.poll() is None and time.monotonic() < deadline, process.stderr.read()
        time.sleep(0.05)
    time.sleep(1)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)  # not MLflow's minutes of retries
    assert process.returncode == 143, stderr
    assert stderr == "nnexp: interrupted by SIGTERM before the run began; nothing was kept\n"
    assert run_folders(tmp_path) == []
