"""A sweep job that its scheduler warns of pre-emption or its time limit (SIGUSR2 from submitit,
SIGUSR1 from SLURM's --signal) checkpoints, is requeued, and finishes the same run folder exactly."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import time
from pathlib import Path

from conftest import NNEXP, read_summary, run_folders, run_nnexp

JOB = ["seed=0", "trainer.epochs=6", "trainer.batch_size=8", "trainer.threads=1"]


def metric_rows(folder: Path) -> list[dict[str, str]]:
    rows = csv.DictReader((folder / "metrics.csv").open())
    return [{k: v for k, v in row.items() if not k.endswith("seconds")} for row in rows]


def epochs_in(tmp_path: Path) -> int:
    found = list((tmp_path / "outputs").rglob("metrics.csv"))
    return len(found[0].read_text().splitlines()) - 1 if found else 0


def submitit_tasks() -> list[int]:
    """The processes submitit runs jobs in (`python -m submitit.core._submit ...`)."""
    tasks = []
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and b"submitit.core._submit" in Path(f"/proc/{entry}/cmdline").read_bytes():
                tasks.append(int(entry))
        except OSError:
            continue
    return tasks


def test_a_job_warned_by_its_scheduler_is_requeued_and_finishes_its_folder_exactly(tmp_path):
    (tmp_path / "straight").mkdir()
    assert run_nnexp(*JOB, cwd=tmp_path / "straight").returncode == 0
    sweep = subprocess.Popen([*NNEXP, "-m", "hydra/launcher=submitit_local", *JOB], cwd=tmp_path,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 300
    while epochs_in(tmp_path) < 1:
        assert sweep.poll() is None and time.monotonic() < deadline, "the job never trained an epoch"
        time.sleep(0.05)
    before = set(submitit_tasks())
    for task in before:  # what submitit's local controller sends before a job's time limit
        os.kill(task, signal.SIGUSR2)
    assert sweep.wait(timeout=300) == 0

    [folder] = [path for path in run_folders(tmp_path) if "multirun" in path.parts]
    summary = read_summary(folder)
    assert summary["status"] == "completed" and len(summary["resumed_at"]) == 1
    assert 1 <= summary["resumed_from_epoch"] < 6
    [straight] = run_folders(tmp_path / "straight")
    assert metric_rows(folder) == metric_rows(straight)  # no row repeated or missing, the same numbers
    assert summary["metrics"]["final"] == read_summary(straight)["metrics"]["final"]
    ledger = (folder.parent / "ledger.jsonl").read_text().splitlines()
    assert [json.loads(line)["status"] for line in ledger] == ["completed"]  # one line for the job
    logged = next(folder.parent.glob(".submitit/*/*_log.out")).read_text()
    assert "Requeued job" in logged  # submitit itself requeued it


def test_without_a_scheduler_sigusr1_stops_a_run_to_resume(tmp_path):
    """A plain run is not killed by SIGUSR1 (the default action): it stops cleanly, resumable."""
    process = subprocess.Popen([*NNEXP, *JOB], cwd=tmp_path, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 300
    while epochs_in(tmp_path) < 1:
        assert process.poll() is None and time.monotonic() < deadline, "the run never trained an epoch"
        time.sleep(0.05)
    process.send_signal(signal.SIGUSR1)
    assert process.wait(timeout=120) == 128 + signal.SIGUSR1
    [folder] = run_folders(tmp_path)
    assert read_summary(folder)["status"] == "interrupted"
    assert f"resume with: nnexp resume={folder}" in process.stderr.read()
