"""`nnexp -m resume=SWEEP_FOLDER` continues a stopped sweep in its own folder: the jobs its ledger records
as completed are left as they are, a stopped job resumes from its checkpoint, and the rest run."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from conftest import NNEXP, nnexp_exit_code, read_summary, run_folders, run_nnexp
from nnexp.sweep.ledger import LEDGER_FILE, read_ledger

# jobs 0-2 train one epoch, jobs 3-5 twenty short ones (so job 3 can be stopped part-way)
SIX_JOBS = ["trainer.epochs=1,20", "seed=0,1,2", "trainer.max_batches_per_epoch=5", "trainer.threads=1"]


def fingerprint(folder: Path) -> dict[str, str]:
    """Every file under `folder` and a hash of its bytes."""
    return {
        str(path.relative_to(folder)): hashlib.sha1(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def completed_lines(ledger: Path) -> int:
    if not ledger.is_file():
        return 0
    return sum(json.loads(line)["status"] == "completed" for line in ledger.read_text().splitlines())


def epochs_in(metrics: Path) -> int:
    return len(metrics.read_text().splitlines()) - 1 if metrics.is_file() else 0


def test_a_six_job_sweep_stopped_after_three_resumes_only_the_other_three(tmp_path):
    sweep_process = subprocess.Popen([*NNEXP, "-m", *SIX_JOBS], cwd=tmp_path, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 300
    while True:  # stop it once three jobs completed and the fourth has trained an epoch
        ledgers = list((tmp_path / "outputs").rglob(LEDGER_FILE))
        fourth = ledgers[0].parent / "3" / "metrics.csv" if ledgers else None
        if ledgers and completed_lines(ledgers[0]) == 3 and epochs_in(fourth) >= 1:
            break
        assert sweep_process.poll() is None and time.monotonic() < deadline, "the sweep never got that far"
        time.sleep(0.02)
    sweep_process.send_signal(signal.SIGTERM)
    assert sweep_process.wait(timeout=120) == 143
    sweep = ledgers[0].parent
    stopped = read_ledger(sweep / LEDGER_FILE)
    assert [(entry["job"], entry["status"]) for entry in stopped] == [
        (0, "completed"), (1, "completed"), (2, "completed"), (3, "interrupted"),
    ]  # fmt: skip
    assert not (sweep / "4").exists()
    kept = {job: fingerprint(sweep / str(job)) for job in range(3)}

    resumed = run_nnexp("-m", f"resume={sweep}", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "3 completed jobs are kept as they are" in resumed.stderr
    ledger = read_ledger(sweep / LEDGER_FILE)
    assert [(entry["job"], entry["status"]) for entry in ledger] == [(job, "completed") for job in range(6)]
    assert ledger[:3] == stopped[:3]  # the kept lines, as they were
    assert {job: fingerprint(sweep / str(job)) for job in range(3)} == kept  # not a byte changed
    assert [folder.name for folder in run_folders(tmp_path)] == ["0", "1", "2", "3", "4", "5"]

    job3 = read_summary(sweep / "3")  # resumed from its checkpoint, exactly as nnexp resume= does
    assert job3["resumed_from_epoch"] >= 1 and len(job3["resumed_at"]) == 1
    assert job3["epochs_completed"] == 20
    rows = (sweep / "3" / "metrics.csv").read_text().splitlines()[1:]
    assert [int(row.split(",")[0]) for row in rows] == list(range(1, 21))  # no epoch missing or repeated
    for job, seed in ((4, 1), (5, 2)):  # never started before: run from the start
        summary = read_summary(sweep / str(job))
        assert summary["status"] == "completed" and summary["seed"] == seed and "resumed_at" not in summary
        assert (sweep / str(job) / ".hydra" / "overrides.yaml").is_file()
    # a completed sweep resumed again changes nothing
    again = run_nnexp("-m", f"resume={sweep}", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert read_ledger(sweep / LEDGER_FILE) == ledger


@pytest.fixture(scope="module")
def one_job_sweep(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sweep")
    result = run_nnexp("-m", "seed=0", "debug=smoke", cwd=root)
    assert result.returncode == 0, result.stderr
    [run] = run_folders(root)
    return run.parent


def refused(sweep_arg: str, *extra: str, cwd: Path) -> str:
    before = fingerprint(cwd)
    result = run_nnexp("-m", f"resume={sweep_arg}", *extra, cwd=cwd)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert fingerprint(cwd) == before
    return result.stderr


def test_a_resume_that_cannot_be_a_sweeps_is_one_line_exit_2_and_changes_nothing(one_job_sweep, tmp_path):
    sweep = tmp_path / "sweep"
    shutil.copytree(one_job_sweep, sweep)
    assert "not an nnexp sweep folder" in refused(str(tmp_path / "nothing"), cwd=tmp_path)
    said = refused(str(sweep / "0"), cwd=tmp_path)
    assert "it is a run folder: resume it with nnexp resume=" in said
    said = refused(str(sweep), "seed=7", cwd=tmp_path)
    assert "cannot resume the sweep with seed=7: a resumed sweep keeps its overrides" in said
    said = refused(str(sweep), "hydra/launcher=paralel", cwd=tmp_path)  # checked as a new sweep's launcher is
    assert "hydra/launcher=paralel is not an option" in said
    assert "did you mean hydra/launcher=parallel" in said

    held = os.open(sweep / "0", os.O_RDONLY)  # as a process still training job 0 holds it
    fcntl.flock(held, fcntl.LOCK_EX)
    try:
        assert "its job 0 is still being trained by another process" in refused(str(sweep), cwd=tmp_path)
    finally:
        os.close(held)

    saved = sweep / "0" / ".hydra" / "config.yaml"
    saved.write_text(saved.read_text().replace("eval_batch_size: 64", "eval_batch_size: 512"))
    said = refused(str(sweep), cwd=tmp_path)
    assert "the config has changed since the sweep ran (trainer.eval_batch_size: 512" in said
    (sweep / "0" / ".hydra" / "overrides.yaml").write_text("- model=cnnn\n")  # no longer composes
    assert "cannot compose job 0's config again" in refused(str(sweep), cwd=tmp_path)


def test_a_search_in_a_database_or_by_another_sweeper_is_refused(
    one_job_sweep, tmp_path, monkeypatch, capsys
):
    """nnexp replays in-memory Optuna studies only; a sweeper it does not know is not guessed at. (The
    command's main() in this process: the exit code and one line of a refused sweep resume in a process
    are test_a_resume_that_cannot_be_a_sweeps_is_one_line_exit_2_and_changes_nothing's.)"""
    monkeypatch.chdir(tmp_path)
    basic = "_target_: hydra._internal.core_plugins.basic_sweeper.BasicSweeper"
    for name, sweeper, said in [
        ("stored", "_target_: hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper\n"
                   "    storage: sqlite:///optuna.db", "keeps its study in sqlite:///optuna.db"),
        ("other", "_target_: hydra_plugins.some_sweeper.OtherSweeper", "a sweep by OtherSweeper cannot be"),
    ]:  # fmt: skip
        sweep = tmp_path / name
        shutil.copytree(one_job_sweep, sweep)
        recorded = sweep / "multirun.yaml"
        assert basic in recorded.read_text()
        recorded.write_text(recorded.read_text().replace(basic, sweeper))
        before = fingerprint(tmp_path)
        assert nnexp_exit_code(monkeypatch, "-m", f"resume={sweep}") == 2
        stderr = capsys.readouterr().err
        assert said in stderr and stderr.count("\n") == 1 and stderr.startswith("nnexp: error:")
        assert fingerprint(tmp_path) == before


def test_an_optuna_search_of_eight_trials_stopped_after_four_continues_to_eight_none_repeated(tmp_path):
    """The finished trials are replayed into the study (not run again), so the sampler knows them."""
    search = ["hparams_search=digits_optuna", "hydra.sweeper.n_trials=8", "debug=smoke"]
    process = subprocess.Popen([*NNEXP, *search], cwd=tmp_path, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 300
    while not (ledgers := list((tmp_path / "outputs").rglob(LEDGER_FILE))) or completed_lines(ledgers[0]) < 4:
        assert process.poll() is None and time.monotonic() < deadline, "the search never got that far"
        time.sleep(0.02)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=120) == 143
    sweep = ledgers[0].parent
    stopped = read_ledger(sweep / LEDGER_FILE)
    finished = [entry for entry in stopped if entry["status"] == "completed"]
    assert 4 <= len(finished) < 8
    kept = {entry["job"]: fingerprint(sweep / str(entry["job"])) for entry in finished}

    resumed = run_nnexp("-m", f"resume={sweep}", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    ledger = read_ledger(sweep / LEDGER_FILE)
    assert [(entry["job"], entry["status"]) for entry in ledger] == [(job, "completed") for job in range(8)]
    assert {entry["job"]: fingerprint(sweep / str(entry["job"])) for entry in finished} == kept
    assert [entry for entry in ledger if entry["job"] in kept] == finished  # not run again
    searched = [tuple(entry["overrides"][:2]) for entry in ledger]
    assert len(set(searched)) == 8  # no trial repeated
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert best["best_value"] == max(entry["objective"] for entry in ledger)  # the study knew all eight
