"""Nothing lost: signals stop cleanly, runs resume exactly, NaN stops a run, checkpoints load safely.

Signals, exit codes and processes started together are checked on real `nnexp` processes; a finished run
that a test only reads or resumes a copy of is trained once per session in this process (conftest's
`session_runs`), and resumes run in this process as `nnexp resume=` runs them (`resume_in_process`)."""

from __future__ import annotations

import csv
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

import nnexp
from conftest import NNEXP, copy_run, read_summary, resume_in_process, run_folders, run_nnexp
from nnexp.cli.preflight import preflight
from nnexp.errors import ConfigError, OutputError
from nnexp.runs.checkpoint import CheckpointError, load_checkpoint
from nnexp.runs.folder import RunFolder

# Batch size 1 makes a digits epoch take long enough to be interrupted in the middle.
SLOW_EPOCHS = ["trainer.batch_size=1", "regularization=dropout", "model.hidden=[32]", "seed=5"]


def metric_rows(folder: Path) -> list[dict[str, str]]:
    rows = csv.DictReader((folder / "metrics.csv").open())
    return [{k: v for k, v in row.items() if not k.endswith("seconds")} for row in rows]


def final_weights(folder: Path) -> dict[str, torch.Tensor]:
    return torch.load(folder / "checkpoint.pt", weights_only=True)["model"]


def start(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([*NNEXP, *args], cwd=tmp_path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip


def wait_for_epochs(tmp_path: Path, epochs: int, process: subprocess.Popen[str]) -> Path:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        folders = run_folders(tmp_path)
        metrics = folders[0] / "metrics.csv" if folders else None
        if metrics is not None and metrics.is_file() and len(metric_rows(folders[0])) >= epochs:
            return folders[0]
        time.sleep(0.05)
    raise AssertionError(f"no run reached epoch {epochs}: {process.stderr.read() if process.stderr else ''}")


STOPPED_RUN = [*SLOW_EPOCHS, "trainer.epochs=6"]


@pytest.fixture(scope="module")
def stopped_by(tmp_path_factory):
    """`stopped_by(signum)`: (folder, exit code, stderr) of a real `nnexp STOPPED_RUN` sent `signum` once it
    had written two epochs' rows; one process per signal per module, read by the tests below."""
    stopped: dict[int, tuple[Path, int, str]] = {}

    def get(signum: int) -> tuple[Path, int, str]:
        if signum not in stopped:
            root = tmp_path_factory.mktemp(f"stopped-by-{signal.Signals(signum).name}")
            process = start(root, *STOPPED_RUN)
            folder = wait_for_epochs(root, 2, process)
            process.send_signal(signum)
            _, stderr = process.communicate(timeout=60)
            stopped[signum] = (folder, process.returncode, stderr)
        return stopped[signum]

    return get


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_the_run_with_its_exit_code_and_a_resume_line(stopped_by, signum, code):
    folder, returncode, stderr = stopped_by(signum)
    assert returncode == code, stderr
    assert f"resume with: nnexp resume={folder}" in stderr and "Traceback" not in stderr
    summary = read_summary(folder)
    assert summary["status"] == "interrupted"
    assert summary["epochs_completed"] == len(metric_rows(folder)) < 6
    assert load_checkpoint(folder / "checkpoint.pt")["epoch"] == summary["epochs_completed"]


def test_an_interrupted_run_resumes_to_exactly_the_uninterrupted_result(stopped_by, session_runs, tmp_path):
    """The run Ctrl-C stopped after its second epoch, resumed (a copy), equals the run never stopped."""
    stopped, code, stderr = stopped_by(signal.SIGINT)
    assert code == 130, stderr
    folder = copy_run(stopped, tmp_path / "run")
    assert read_summary(folder)["epochs_completed"] < 6

    resume_in_process(folder)
    straight = session_runs(*STOPPED_RUN)
    assert metric_rows(folder) == metric_rows(straight)
    for name, tensor in final_weights(straight).items():
        assert torch.equal(tensor, final_weights(folder)[name]), name
    summary = read_summary(folder)
    assert summary["status"] == "completed" and summary["resumed_from_epoch"] >= 2
    assert summary["metrics"]["final"] == read_summary(straight)["metrics"]["final"]


def test_four_epochs_equal_two_plus_a_forced_resume_of_two(session_runs, tmp_path):
    args = ["regularization=dropout", "optim=sgd", "optim.momentum=0.9", "seed=3"]
    straight = session_runs(*args, "trainer.epochs=4")
    two = copy_run(session_runs(*args, "trainer.epochs=2"), tmp_path / "two")
    said = "resuming with a different config (trainer.epochs: 2 -> 4): add force=true"
    with pytest.raises(ConfigError, match=re.escape(said)) as refused:  # exit code 2, before any change
        resume_in_process(two, "trainer.epochs=4")
    assert refused.value.exit_code == 2
    resume_in_process(two, "trainer.epochs=4", "force=true")
    assert metric_rows(two) == metric_rows(straight)
    for name, tensor in final_weights(straight).items():
        assert torch.equal(tensor, final_weights(two)[name]), name


def test_a_nan_loss_stops_the_run_as_diverged_with_exit_3(tmp_path):
    result = run_nnexp("optim=sgd", "optim.lr=1e12", "trainer.epochs=3", cwd=tmp_path)
    assert result.returncode == 3
    assert result.stderr.count("\n") == 1
    assert "loss became NaN at epoch 1, step" in result.stderr and "(lr=1e+12): lower the learning rate" in (
        result.stderr
    )
    [folder] = run_folders(tmp_path)
    assert read_summary(folder)["status"] == "diverged"
    kept = load_checkpoint(folder / "checkpoint.pt")  # the last finite state: before epoch 1
    assert kept["epoch"] == 0 and all(torch.isfinite(t).all() for t in kept["model"].values())


def test_a_loss_that_does_not_move_is_flagged(tmp_path, piped_console):
    overrides = ["model.init=normal", "model.init_std=0", "optim=sgd", "optim.lr=1e-9", "trainer.epochs=4",
                 "trainer.stuck_epochs=2"]  # fmt: skip
    result = nnexp.run(overrides, output_dir=tmp_path / "run")
    assert result.status == "completed"
    stuck = [finding for finding in read_summary(result.run_dir)["diagnostics"]
             if finding["code"] == "stuck-loss"]  # fmt: skip
    assert len(stuck) == 1 and "the training loss has not moved for 2 epochs" in stuck[0]["message"]
    assert "has not moved" in piped_console()  # what the console printed


def test_a_damaged_checkpoint_is_refused_by_name_never_a_fresh_start(tmp_path, session_runs):
    folder = copy_run(session_runs("trainer.epochs=1"), tmp_path / "run")
    checkpoint = folder / "checkpoint.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:200])
    before = (folder / "metrics.csv").read_text()
    result = run_nnexp(f"resume={folder}", cwd=tmp_path)  # the command: exit code 2 and one line
    assert result.returncode == 2
    assert f"corrupt checkpoint {checkpoint}" in result.stderr and result.stderr.count("\n") == 1
    assert (folder / "metrics.csv").read_text() == before
    for damage in (b"", bytes(range(256)) * 8):  # empty; random bytes (no longer a zip archive)
        checkpoint.write_bytes(damage)
        named = f"corrupt checkpoint {re.escape(str(checkpoint))}"
        with pytest.raises(CheckpointError, match=named) as refused:
            resume_in_process(folder)
        assert refused.value.exit_code == 2
        assert (folder / "metrics.csv").read_text() == before


class RunsCode:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_checkpoint_that_would_run_code_is_refused_and_the_code_never_runs(tmp_path):
    marker = tmp_path / "payload-ran"
    path = tmp_path / "checkpoint.pt"
    torch.save({"model": RunsCode(str(marker))}, path)
    with pytest.raises(CheckpointError, match="holds code"):
        load_checkpoint(path)
    assert not marker.exists()
    torch.load(path, weights_only=False)  # the payload is real: a plain unpickler runs it
    assert marker.exists()


def test_a_crash_while_saving_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    folder = RunFolder(tmp_path)
    folder.save_checkpoint({"epoch": 1, "model": {"weight": torch.ones(3)}, "history": []})

    def crash_mid_write(state, handle, *args, **kwargs):
        handle.write(b"half a checkpoint")
        raise OSError("No space left on device")

    monkeypatch.setattr(torch, "save", crash_mid_write)
    with pytest.raises(OutputError, match=f"cannot write {folder.checkpoint_path}: No space left on device"):
        folder.save_checkpoint({"epoch": 2, "model": {"weight": torch.zeros(3)}, "history": []})
    assert load_checkpoint(folder.checkpoint_path)["epoch"] == 1
    assert sorted(path.name for path in tmp_path.iterdir()) == ["checkpoint.pt"]


def test_an_output_folder_that_is_a_file_is_refused_before_the_run(tmp_path, monkeypatch):
    (tmp_path / "outputs").write_text("not a folder")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as refused:  # what `nnexp trainer.epochs=1` prints, exit code 2
        preflight(["trainer.epochs=1"])
    said = str(refused.value)
    assert refused.value.exit_code == 2
    assert said.startswith(f"cannot create run folders under outputs: {tmp_path / 'outputs'} is a file")


def test_eight_runs_started_together_get_eight_folders(tmp_path):
    processes = [start(tmp_path, "trainer.epochs=1", "trainer.max_batches_per_epoch=2", f"seed={seed}")
                 for seed in range(8)]  # fmt: skip
    assert [process.wait(timeout=600) for process in processes] == [0] * 8
    folders = run_folders(tmp_path)
    assert sorted(read_summary(folder)["seed"] for folder in folders) == list(range(8))


def test_two_sweeps_started_together_keep_all_their_jobs(tmp_path):
    processes = [start(tmp_path, "-m", "optim=sgd,adam", f"seed={seed}", "trainer.epochs=1",
                       "trainer.max_batches_per_epoch=2") for seed in (1, 2)]  # fmt: skip
    assert [process.wait(timeout=600) for process in processes] == [0, 0]
    folders = run_folders(tmp_path)
    assert len(folders) == 4 and len({folder.parent for folder in folders}) == 2
    assert sorted(read_summary(folder)["seed"] for folder in folders) == [1, 1, 2, 2]


def processes_of_sweep(sweep_pid: int) -> list[int]:
    """Live processes that inherited the sweep's NNEXP_SWEEP_PID (its workers)."""
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if f"NNEXP_SWEEP_PID={sweep_pid}".encode() in environ.read_bytes().split(b"\0"):
                found.append(int(environ.parent.name))
        except OSError:
            continue
    return [pid for pid in found if pid != sweep_pid]


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc to find the workers")
def test_sigterm_to_a_joblib_sweep_leaves_no_workers_behind(tmp_path):
    sweep = start(tmp_path, "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "seed=1,2,3,4",
                  *SLOW_EPOCHS[:1], "trainer.epochs=50")  # fmt: skip
    deadline = time.monotonic() + 300
    while len(list((tmp_path / "outputs").rglob("metrics.csv"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert processes_of_sweep(sweep.pid), "the workers should be running"
    sweep.send_signal(signal.SIGTERM)
    sweep.wait(timeout=60)
    deadline = time.monotonic() + 60
    while processes_of_sweep(sweep.pid) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert processes_of_sweep(sweep.pid) == []
    statuses = [read_summary(folder)["status"] for folder in run_folders(tmp_path)]
    assert statuses and set(statuses) == {"interrupted"}  # jobs not yet started never start


@pytest.mark.slow
def test_sigkill_during_checkpoint_saves_leaves_a_loadable_checkpoint(tmp_path):
    """A 17-million-parameter model checkpointed after every one-batch epoch, killed the moment a save's
    temporary file appears (so while it is being written, or just after), once epoch 1's save is done."""
    args = ["model.hidden=[4096,4096]", "trainer.max_batches_per_epoch=1", "trainer.epochs=100000",
            "data.val_fraction=0", "trainer.checkpoint_every_s=0"]  # fmt: skip
    process = start(tmp_path, *args)
    folder = wait_for_epochs(tmp_path, 2, process)  # epoch 2's row: epoch 1's checkpoint is saved
    deadline = time.monotonic() + 300
    while not any(folder.glob(".checkpoint.pt.*.tmp")):
        assert process.poll() is None and time.monotonic() < deadline, process.stderr.read()
        time.sleep(0.0005)
    process.kill()
    process.wait(timeout=60)
    state = load_checkpoint(folder / "checkpoint.pt")
    assert state["epoch"] >= 1 and torch.isfinite(state["model"]["layers.1.weight"]).all()
