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

import pytest

from conftest import NNEXP, read_summary, run_folders, run_nnexp

JOB = ["seed=0", "trainer.epochs=6", "trainer.batch_size=8", "trainer.threads=1"]


def metric_rows(folder: Path) -> list[dict[str, str]]:
    rows = csv.DictReader((folder / "metrics.csv").open())
    return [{k: v for k, v in row.items() if not k.endswith("seconds")} for row in rows]


def epochs_in(tmp_path: Path) -> int:
    found = list((tmp_path / "outputs").rglob("metrics.csv"))
    return len(found[0].read_text().splitlines()) - 1 if found else 0


def submitit_tasks(sweep: int) -> list[int]:
    """The processes submitit runs the jobs of sweep process `sweep` in (`python -m submitit.core._submit`,
    children of submitit's local controller, a child of the sweep); not other sweeps' on this machine."""

    def parent(pid: str) -> int:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])

    tasks = []
    for entry in os.listdir("/proc"):
        try:
            command = Path(f"/proc/{entry}/cmdline").read_bytes() if entry.isdigit() else b""
            if b"submitit.core._submit" in command and parent(str(parent(entry))) == sweep:
                tasks.append(int(entry))
        except (OSError, ValueError):
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
    before = set(submitit_tasks(sweep.pid))
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


def pending(pid: int, signum: int) -> bool:
    """Whether `signum` was sent to process `pid` and waits there (in a stopped one, until it goes on)."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return any(int(fields[name], 16) >> (signum - 1) & 1 for name in ("ShdPnd", "SigPnd"))


@pytest.mark.slow
def test_a_submitit_local_job_at_its_time_limit_is_requeued_by_submitit_and_finishes_its_folder(tmp_path):
    """No signal is sent here. With `hydra.launcher.timeout_min=1` (whole minutes: the shortest limit
    the submitit_local launcher takes), submitit's local controller itself sends SIGUSR2 its fixed
    `signal_delay_s` (30 s) before the minute is up; the job checkpoints, submitit's handler counts a
    time-out and requeues it, the controller starts it again, and it finishes the same run folder with
    an uninterrupted run's metrics, no row repeated.

    So that the warning finds the job training on a machine of any speed or load, the test pauses the
    job (SIGSTOP) after its first epoch until the controller's SIGUSR2 is waiting for it, then lets it
    go on (SIGCONT): a run of 20 epochs that lasts past the warning, without 30 s of computing."""
    job = ["seed=0", "trainer.epochs=20", "trainer.batch_size=8", "trainer.threads=1", "device=cpu"]
    (tmp_path / "straight").mkdir()
    straight = subprocess.Popen([*NNEXP, *job], cwd=tmp_path / "straight", stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)  # fmt: skip
    limited = [*NNEXP, "-m", "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=1", *job]
    with (tmp_path / "sweep.err").open("w") as errors:
        sweep = subprocess.Popen(limited, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=errors)
    deadline = time.monotonic() + 300
    while epochs_in(tmp_path) < 1:
        assert sweep.poll() is None and time.monotonic() < deadline, "the job never trained an epoch"
        time.sleep(0.02)
    [task] = submitit_tasks(sweep.pid)
    os.kill(task, signal.SIGSTOP)
    try:
        deadline = time.monotonic() + 120  # the warning is due 30 s after the job started
        while not pending(task, signal.SIGUSR2):
            assert time.monotonic() < deadline, "submitit's controller never warned the job"
            time.sleep(0.2)
    finally:
        os.kill(task, signal.SIGCONT)
    assert sweep.wait(timeout=300) == 0, (tmp_path / "sweep.err").read_text()[-2000:]
    assert straight.wait(timeout=300) == 0

    [folder] = [path for path in run_folders(tmp_path) if "multirun" in path.parts]
    [log_file] = folder.parent.glob(".submitit/*/*_log.out")  # one job id, however often it is requeued
    logged = [line for line in log_file.read_text().splitlines() if line.startswith("submitit ")]
    timeouts = sum("SIGUSR2 on" in line and "this job is timed-out" in line for line in logged)
    assert timeouts >= 1 and sum("Requeued job" in line for line in logged) == timeouts, logged
    summary = read_summary(folder)
    assert summary["status"] == "completed" and len(summary["resumed_at"]) == timeouts
    assert 1 <= summary["resumed_from_epoch"] < 20
    [straight_folder] = run_folders(tmp_path / "straight")
    assert metric_rows(folder) == metric_rows(straight_folder)  # no row repeated or missing, same numbers
    assert summary["metrics"]["final"] == read_summary(straight_folder)["metrics"]["final"]
    ledger = (folder.parent / "ledger.jsonl").read_text().splitlines()
    assert [json.loads(line)["status"] for line in ledger] == ["completed"]  # one line for the job


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
