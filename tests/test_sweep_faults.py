"""A stopped sweep still says what became of every job it started, and each of them can be resumed."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import NNEXP, read_summary, run_folders, run_nnexp

ONE_EXAMPLE_BATCHES = ["trainer.batch_size=1", "model.hidden=[32]"]  # slow enough to stop mid-epoch


def start_sweep(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([*NNEXP, "-m", *args], cwd=tmp_path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip


def wait_for_metrics(tmp_path: Path, runs: int, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 300
    while len(list((tmp_path / "outputs").rglob("metrics.csv"))) < runs:
        assert process.poll() is None and time.monotonic() < deadline, "the sweep never got going"
        time.sleep(0.1)


def ledger_of(tmp_path: Path) -> list[dict]:
    (ledger,) = (tmp_path / "outputs").rglob("ledger.jsonl")
    return [json.loads(line) for line in ledger.read_text().splitlines()]


def test_sigterm_to_a_sweep_records_the_stopped_job_in_the_ledger(tmp_path):
    sweep = start_sweep(tmp_path, "seed=1,2,3", "trainer.epochs=50", *ONE_EXAMPLE_BATCHES)
    wait_for_metrics(tmp_path, 1, sweep)
    sweep.send_signal(signal.SIGTERM)
    assert sweep.wait(timeout=120) == 143
    (sweep_folder,) = (tmp_path / "outputs" / "multirun").glob("*/*")
    assert f"resume the sweep with: nnexp -m resume={sweep_folder}" in sweep.stderr.read()
    (stopped,) = ledger_of(tmp_path)
    assert stopped["status"] == "interrupted" and "seed=1" in stopped["overrides"]
    (folder,) = run_folders(tmp_path)  # the jobs after it never started
    assert read_summary(folder)["status"] == "interrupted"


@pytest.mark.slow
def test_every_job_a_stopped_parallel_sweep_started_is_in_its_ledger_and_resumes(tmp_path):
    sweep = start_sweep(tmp_path, "hydra/launcher=parallel", "trainer.threads=1", "seed=1,2,3,4",
                        "trainer.epochs=50", *ONE_EXAMPLE_BATCHES)  # fmt: skip
    wait_for_metrics(tmp_path, 2, sweep)
    sweep.send_signal(signal.SIGTERM)
    sweep.wait(timeout=120)
    deadline = time.monotonic() + 60  # the workers notice that their sweep is gone, then stop
    while any(read_summary(f)["status"] == "running" for f in run_folders(tmp_path)):
        assert time.monotonic() < deadline, "a worker kept running after its sweep was stopped"
        time.sleep(0.5)

    # Every job folder with a summary, including one a worker opened after the sweep was gone and
    # recorded as not started (its .hydra/ is written only once a job runs). Such a late worker writes
    # its summary, then its ledger line, so both are read again until they agree.
    def job_folders() -> list[Path]:
        return sorted(path.parent for path in (tmp_path / "outputs" / "multirun").glob("*/*/*/summary.json"))

    def ledger_matches(folders: list[Path]) -> bool:
        written = any((tmp_path / "outputs").rglob("ledger.jsonl"))
        return written and sorted(entry["job"] for entry in ledger_of(tmp_path)) == sorted(
            int(folder.name) for folder in folders
        )

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if ledger_matches(job_folders()):
            break
        time.sleep(0.5)
    folders = job_folders()
    assert sorted(entry["job"] for entry in ledger_of(tmp_path)) == sorted(int(f.name) for f in folders)
    stopped = [folder for folder in folders if read_summary(folder).get("epochs_completed", 0) > 0]
    assert stopped, "at least one job had trained when the signal came"
    one_more = read_summary(stopped[0])["epochs_completed"] + 1
    resumed = run_nnexp(f"resume={stopped[0]}", f"trainer.epochs={one_more}", "force=true", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
