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


def pause_until_warned(task: int) -> None:
    """Hold the job still (SIGSTOP) until submitit's controller has sent its SIGUSR2, then let it go on."""
    os.kill(task, signal.SIGSTOP)
    try:
        deadline = time.monotonic() + 120  # the warning is due 30 s after the job started
        while not pending(task, signal.SIGUSR2):
            assert time.monotonic() < deadline, "submitit's controller never warned the job"
            time.sleep(0.2)
    finally:
        os.kill(task, signal.SIGCONT)


def submitit_times(log_lines: list[str], message: str) -> list[float]:
    """When submitit logged `message`, in seconds (lines begin `submitit INFO (2026-11-28 11:11:12,612)`)."""
    stamps = [line.split("(", 1)[1].split(")", 1)[0] for line in log_lines if message in line]
    return [time.mktime(time.strptime(stamp.split(",")[0], "%Y-%m-%d %H:%M:%S")) for stamp in stamps]


@pytest.mark.slow
def test_a_submitit_local_job_longer_than_its_time_limit_is_requeued_and_finishes_its_folder(tmp_path):
    """No signal is sent here. With `hydra.launcher.timeout_min=1` (whole minutes: the shortest limit
    the submitit_local launcher takes), submitit's local controller itself sends SIGUSR2 its fixed
    `signal_delay_s` (30 s) before the minute is up; the job checkpoints, submitit's handler counts a
    time-out and requeues it, the controller starts it again, and so twice: the job ends more than a
    minute after it started, in the same run folder, with an uninterrupted run's rows and metrics.

    So that each warning finds the job training on a machine of any speed or load, the test holds the
    job still (SIGSTOP) after an epoch until the controller's SIGUSR2 waits for it, then lets it go on
    (SIGCONT): a 20-epoch run outlasts its limit without a minute of computing."""
    job = ["seed=0", "trainer.epochs=20", "trainer.batch_size=8", "trainer.threads=1", "device=cpu"]
    (tmp_path / "straight").mkdir()
    straight = subprocess.Popen([*NNEXP, *job], cwd=tmp_path / "straight", stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)  # fmt: skip
    limited = [*NNEXP, "-m", "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=1", *job]
    with (tmp_path / "sweep.err").open("w") as errors:
        sweep = subprocess.Popen(limited, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=errors)
    paused: list[tuple[int, int]] = []  # (job process, epochs in metrics.csv) at each pause
    first_seen: dict[int, int] = {}  # job process -> epochs in metrics.csv when it was first seen
    deadline = time.monotonic() + 300
    while len(paused) < 2:
        assert sweep.poll() is None and time.monotonic() < deadline, (tmp_path / "sweep.err").read_text()
        tasks = submitit_tasks(sweep.pid)
        epochs = epochs_in(tmp_path)
        if tasks:
            first_seen.setdefault(tasks[0], epochs)
        # Each attempt once it has trained an epoch of its own, so its signal handlers are in place: one
        # held still while it starts would meet the warning with SIGUSR2's default action, and die.
        if tasks and tasks[0] not in dict(paused) and epochs > first_seen[tasks[0]]:
            pause_until_warned(tasks[0])
            paused.append((tasks[0], epochs))
        time.sleep(0.02)
    assert sweep.wait(timeout=300) == 0, (tmp_path / "sweep.err").read_text()[-2000:]
    assert straight.wait(timeout=300) == 0

    [folder] = [path for path in run_folders(tmp_path) if "multirun" in path.parts]
    [log_file] = folder.parent.glob(".submitit/*/*_log.out")  # one job id, however often it is requeued
    logged = [line for line in log_file.read_text().splitlines() if line.startswith("submitit ")]
    assert sum("Caught signal SIGUSR2" in line and "this job is timed-out" in line for line in logged) == 2
    assert sum("Requeued job" in line for line in logged) == 2, logged
    started, ended = submitit_times(logged, "Starting with")[0], submitit_times(logged, "Job completed")[-1]
    assert ended - started > 60  # longer than its limit: without the requeues it was killed at 60 s
    summary = read_summary(folder)
    assert summary["status"] == "completed" and len(summary["resumed_at"]) == 2
    assert paused[1][1] <= summary["resumed_from_epoch"] < 20  # from where the second warning found it
    [straight_folder] = run_folders(tmp_path / "straight")
    assert metric_rows(folder) == metric_rows(straight_folder)  # no row repeated or missing, same numbers
    assert summary["metrics"]["final"] == read_summary(straight_folder)["metrics"]["final"]
    ledger = (folder.parent / "ledger.jsonl").read_text().splitlines()
    assert [json.loads(line)["status"] for line in ledger] == ["completed"]  # one line for the job


@pytest.mark.slow
def test_a_job_past_its_last_requeue_ends_interrupted_in_one_line_and_its_sweep_resumes(tmp_path):
    """With `++hydra.launcher.max_num_timeout=0` submitit requeues no time-out: the warned job ends
    `interrupted` at its checkpoint, with its ledger line; the sweep ends with one line and exit 1, no
    traceback; `nnexp -m resume=SWEEP` then finishes it with an uninterrupted run's rows."""
    job = ["seed=0", "trainer.epochs=20", "trainer.batch_size=8", "trainer.threads=1", "device=cpu"]
    limited = [*NNEXP, "-m", "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=1"]
    with (tmp_path / "sweep.err").open("w") as errors:
        sweep = subprocess.Popen([*limited, "++hydra.launcher.max_num_timeout=0", *job], cwd=tmp_path,
                                 stdout=subprocess.DEVNULL, stderr=errors)  # fmt: skip
    (tmp_path / "straight").mkdir()
    straight = subprocess.Popen([*NNEXP, *job], cwd=tmp_path / "straight", stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 300
    while epochs_in(tmp_path) < 1 or not submitit_tasks(sweep.pid):
        assert sweep.poll() is None and time.monotonic() < deadline, (tmp_path / "sweep.err").read_text()
        time.sleep(0.02)
    pause_until_warned(submitit_tasks(sweep.pid)[0])
    assert sweep.wait(timeout=300) == 1
    assert straight.wait(timeout=300) == 0
    said = (tmp_path / "sweep.err").read_text()
    assert "Traceback" not in said and "nnexp: 1 of 1 sweep jobs did not complete (1 interrupted)" in said

    [folder] = [path for path in run_folders(tmp_path) if "multirun" in path.parts]
    summary = read_summary(folder)
    assert summary["status"] == "interrupted" and "timed-out too many times" in summary["error"]
    assert (folder / "checkpoint.pt").is_file()
    [line] = (folder.parent / "ledger.jsonl").read_text().splitlines()
    assert json.loads(line)["status"] == "interrupted"
    [job_said] = folder.parent.glob(".submitit/*/*_log.err")  # the job's own stderr
    assert f"resume the sweep with: nnexp -m resume={folder.parent}" in job_said.read_text()

    resumed = run_nnexp("-m", f"resume={folder.parent}", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    [straight_folder] = run_folders(tmp_path / "straight")
    assert read_summary(folder)["status"] == "completed"
    assert metric_rows(folder) == metric_rows(straight_folder)
    ledger = (folder.parent / "ledger.jsonl").read_text().splitlines()
    assert [json.loads(line)["status"] for line in ledger] == ["completed"]


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
