"""Nothing lost: signals stop cleanly, runs resume exactly, NaN stops a run, checkpoints load safely."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from conftest import NNEXP, read_summary, run_folders, run_nnexp
from nnexp.errors import OutputError
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


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_the_run_with_its_exit_code_and_a_resume_line(tmp_path, signum, code):
    process = start(tmp_path, *SLOW_EPOCHS, "trainer.epochs=30")
    folder = wait_for_epochs(tmp_path, 1, process)
    process.send_signal(signum)
    assert process.wait(timeout=60) == code
    stderr = process.stderr.read()
    assert f"resume with: nnexp resume={folder}" in stderr and "Traceback" not in stderr
    summary = read_summary(folder)
    assert summary["status"] == "interrupted"
    assert summary["epochs_completed"] == len(metric_rows(folder)) < 30
    assert load_checkpoint(folder / "checkpoint.pt")["epoch"] == summary["epochs_completed"]


def test_an_interrupted_run_resumes_to_exactly_the_uninterrupted_result(tmp_path):
    straight_dir, stopped_dir = tmp_path / "straight", tmp_path / "stopped"
    straight_dir.mkdir(), stopped_dir.mkdir()
    args = [*SLOW_EPOCHS, "trainer.epochs=6"]
    assert run_nnexp(*args, cwd=straight_dir).returncode == 0
    process = start(stopped_dir, *args)
    folder = wait_for_epochs(stopped_dir, 2, process)
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 130
    assert read_summary(folder)["epochs_completed"] < 6

    resumed = run_nnexp(f"resume={folder}", cwd=stopped_dir)
    assert resumed.returncode == 0, resumed.stderr
    [straight] = run_folders(straight_dir)
    assert metric_rows(folder) == metric_rows(straight)
    for name, tensor in final_weights(straight).items():
        assert torch.equal(tensor, final_weights(folder)[name]), name
    summary = read_summary(folder)
    assert summary["status"] == "completed" and summary["resumed_from_epoch"] >= 2
    assert summary["metrics"]["final"] == read_summary(straight)["metrics"]["final"]


def test_four_epochs_equal_two_plus_a_forced_resume_of_two(tmp_path):
    args = ["regularization=dropout", "optim=sgd", "optim.momentum=0.9", "seed=3"]
    assert run_nnexp(*args, "trainer.epochs=4", cwd=tmp_path).returncode == 0
    assert run_nnexp(*args, "trainer.epochs=2", cwd=tmp_path).returncode == 0
    straight, two = run_folders(tmp_path)
    refused = run_nnexp(f"resume={two}", "trainer.epochs=4", cwd=tmp_path)
    assert refused.returncode == 2
    assert "resuming with a different config (trainer.epochs: 2 -> 4): add force=true" in refused.stderr
    resumed = run_nnexp(f"resume={two}", "trainer.epochs=4", "force=true", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
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


def test_a_loss_that_does_not_move_is_flagged(tmp_path):
    result = run_nnexp("model.init=normal", "model.init_std=0", "optim=sgd", "optim.lr=1e-9",
                       "trainer.epochs=4", "trainer.stuck_epochs=2", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0
    stuck = [finding for finding in read_summary(run_folders(tmp_path)[0])["diagnostics"]
             if finding["code"] == "stuck-loss"]  # fmt: skip
    assert len(stuck) == 1 and "the training loss has not moved for 2 epochs" in stuck[0]["message"]
    assert "has not moved" in result.stdout


def test_a_damaged_checkpoint_is_refused_by_name_never_a_fresh_start(tmp_path):
    assert run_nnexp("trainer.epochs=1", cwd=tmp_path).returncode == 0
    [folder] = run_folders(tmp_path)
    checkpoint = folder / "checkpoint.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:200])
    before = (folder / "metrics.csv").read_text()
    result = run_nnexp(f"resume={folder}", cwd=tmp_path)
    assert result.returncode == 2
    assert f"corrupt checkpoint {checkpoint}" in result.stderr
    assert (folder / "metrics.csv").read_text() == before
    for damage in (b"", bytes(range(256)) * 8):  # empty; random bytes (no longer a zip archive)
        checkpoint.write_bytes(damage)
        result = run_nnexp(f"resume={folder}", cwd=tmp_path)
        assert result.returncode == 2 and "corrupt checkpoint" in result.stderr


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


def test_an_output_folder_that_is_a_file_is_refused_before_the_run(tmp_path):
    (tmp_path / "outputs").write_text("not a folder")
    result = run_nnexp("trainer.epochs=1", cwd=tmp_path)
    assert result.returncode == 2
    assert "cannot create run folders under outputs/" in result.stderr and "is a file" in result.stderr


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
    # A 17-million-parameter model checkpointed after every one-batch epoch: the process is saving
    # most of the time, so a kill is likely to land mid-save.
    args = ["model.hidden=[4096,4096]", "trainer.max_batches_per_epoch=1", "trainer.epochs=100000",
            "data.val_fraction=0", "trainer.checkpoint_every_s=0"]  # fmt: skip
    for delay in (4.0, 5.5):
        workdir = tmp_path / f"kill-after-{delay}"
        workdir.mkdir()
        process = start(workdir, *args)
        folder = wait_for_epochs(workdir, 1, process)
        time.sleep(delay)
        process.kill()
        process.wait(timeout=60)
        state = load_checkpoint(folder / "checkpoint.pt")
        assert state["epoch"] >= 1 and torch.isfinite(state["model"]["layers.1.weight"]).all()
