"""Sweeps through the real CLI: the ledger, a failing job, the joblib and submitit launchers, Optuna."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir

from conftest import nnexp_exit_code, read_summary, run_folders, run_nnexp, write_fish_csv
from nnexp.cli.hydra_hooks import register_resolvers
from nnexp.paths import CONFIG_DIR
from nnexp.sweep.ledger import LEDGER_FILE, read_ledger

QUICK = ["trainer.epochs=2"]


def sweep_folder(root: Path) -> Path:
    [folder] = {path.parent for path in (root / "outputs" / "multirun").rglob(LEDGER_FILE)}
    return folder


def report(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The installed `nnexp-report` command."""
    command = (
        [shutil.which("nnexp-report")]
        if shutil.which("nnexp-report")
        else [sys.executable, "-m", "nnexp.look.report"]
    )
    return subprocess.run([*command, *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_a_2x2_sweep_gives_four_run_folders_a_ledger_and_a_report(tmp_path):
    result = run_nnexp("-m", "optim=sgd,adam", "optim.lr=0.01,0.1", *QUICK, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    sweep = sweep_folder(tmp_path)
    folders = run_folders(tmp_path)
    assert [folder.parent for folder in folders] == [sweep] * 4 and "multirun" in sweep.parts
    for folder in folders:
        assert read_summary(folder)["status"] == "completed"
        assert (folder / "learning_curves.png").stat().st_size > 1000
    assert sorted(read_summary(folder)["optimizer"] for folder in folders) == ["Adam", "Adam", "SGD", "SGD"]

    ledger = read_ledger(sweep / LEDGER_FILE)
    assert [entry["job"] for entry in ledger] == [0, 1, 2, 3]
    assert {tuple(entry["overrides"][:2]) for entry in ledger} == {
        ("optim=sgd", "optim.lr=0.01"), ("optim=sgd", "optim.lr=0.1"),
        ("optim=adam", "optim.lr=0.01"), ("optim=adam", "optim.lr=0.1"),
    }  # fmt: skip
    for entry in ledger:
        assert entry["status"] == "completed"
        summary = read_summary(sweep / entry["run_dir"])
        assert entry["metrics"] == summary["metrics"]["final"]

    shown = report(str(sweep), "--plot", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "4 runs, sorted by val_accuracy" in shown.stdout
    rows = list(csv.DictReader((sweep / "report.csv").open()))
    assert len(rows) == 4
    assert {"optim", "optim.lr", "status", "val_accuracy", "test_accuracy", "epochs", "wall_s"} <= set(
        rows[0]
    )
    assert "trainer.epochs" not in rows[0]  # the same in every run, so not a column
    accuracies = [float(row["val_accuracy"]) for row in rows]
    assert accuracies == sorted(accuracies, reverse=True)
    assert (sweep / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# A value the config checks refuse stops the whole sweep before its first job
# (tests/test_api_and_sweep_checks.py); a job fails on its own for what only its run reveals: its data.
RUNTIME_MISTAKE = ["data=fish", "model=linear"]


@pytest.mark.parametrize("launcher", [[], ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]])
def test_a_failing_job_does_not_stop_the_others_and_the_sweep_exits_non_zero(tmp_path, launcher):
    write_fish_csv(tmp_path / "Fish.csv")
    args = [*RUNTIME_MISTAKE, "data.path=missing.csv,Fish.csv", "trainer.epochs=1"]
    result = run_nnexp("-m", *launcher, *args, cwd=tmp_path)
    assert result.returncode == 2  # the one job that did not complete was refused for a mistake, as alone
    assert "nnexp: 1 of 2 sweep jobs did not complete (1 failed)" in result.stderr
    assert "Traceback" not in result.stderr
    ledger = read_ledger(sweep_folder(tmp_path) / LEDGER_FILE)
    assert [(entry["overrides"][2], entry["status"]) for entry in ledger] == [
        ("data.path=missing.csv", "failed"),
        ("data.path=Fish.csv", "completed"),
    ]
    assert "data.path=missing.csv" in ledger[0]["error"]
    assert ledger[1]["metrics"]["test_mse"] >= 0


def test_a_sweep_exits_2_only_when_every_job_that_did_not_complete_was_a_mistake(tmp_path):
    """Each job exits as it would alone (2 a mistake, 3 diverged); the sweep says 2 or 3 only when every
    job that did not complete agrees, and 1 for a mixture."""
    for folder in ("mistakes", "mixed"):
        (tmp_path / folder).mkdir()
    write_fish_csv(tmp_path / "mixed" / "Fish.csv")
    missing = ["data.path=missing.csv,gone.csv", "trainer.epochs=1"]
    mistakes = run_nnexp("-m", *RUNTIME_MISTAKE, *missing, cwd=tmp_path / "mistakes")
    assert mistakes.returncode == 2, mistakes.stderr
    assert "nnexp: 2 of 2 sweep jobs did not complete (2 failed)" in mistakes.stderr
    mixed = run_nnexp(
        "-m", *RUNTIME_MISTAKE, "data.path=missing.csv,Fish.csv", "optim.lr=1e9", "trainer.epochs=2",
        cwd=tmp_path / "mixed",
    )  # fmt: skip
    statuses = [entry["status"] for entry in read_ledger(sweep_folder(tmp_path / "mixed") / LEDGER_FILE)]
    assert statuses == ["failed", "diverged"] and mixed.returncode == 1, mixed.stderr


def test_the_joblib_launcher_runs_jobs_in_parallel_processes(tmp_path):
    result = run_nnexp("-m", "hydra/launcher=parallel", "seed=1,2", "trainer.epochs=1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    sweep = sweep_folder(tmp_path)
    launcher = yaml.safe_load((sweep / "multirun.yaml").read_text())["hydra"]["launcher"]
    assert launcher["n_jobs"] == 2 and "joblib" in launcher["_target_"].lower()
    ledger = read_ledger(sweep / LEDGER_FILE)
    assert sorted(entry["overrides"][0] for entry in ledger) == ["seed=1", "seed=2"]
    assert {entry["status"] for entry in ledger} == {"completed"}


def test_the_submitit_local_launcher_runs_the_sweep_as_separate_jobs(tmp_path):
    result = run_nnexp("-m", "hydra/launcher=submitit_local", "seed=1,2", "trainer.epochs=1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    sweep = sweep_folder(tmp_path)
    assert (sweep / ".submitit").is_dir()  # submitit's own job records
    ledger = read_ledger(sweep / LEDGER_FILE)
    assert sorted(entry["overrides"][0] for entry in ledger) == ["seed=1", "seed=2"]
    assert {entry["status"] for entry in ledger} == {"completed"}


def test_the_slurm_launcher_config_composes():
    register_resolvers()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("config", overrides=["hydra/launcher=slurm"], return_hydra_config=True)
    assert cfg.hydra.launcher._target_.endswith("SlurmLauncher")
    assert cfg.hydra.launcher.timeout_min == 60 and cfg.hydra.launcher.gpus_per_node == 1


def test_an_optuna_search_of_six_trials_reports_the_best_parameters(tmp_path):
    result = run_nnexp("hparams_search=digits_optuna", *QUICK, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Best parameters" in result.stdout + result.stderr
    sweep = sweep_folder(tmp_path)
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert set(best["best_params"]) == {"optim.lr", "model.hidden"}
    ledger = read_ledger(sweep / LEDGER_FILE)
    assert len(ledger) == 6 and {entry["status"] for entry in ledger} == {"completed"}
    # The objective each trial returned is its final val_accuracy, and the best is the maximum.
    for entry in ledger:
        assert entry["objective"] == entry["metrics"]["val_accuracy"]
    assert best["best_value"] == max(entry["objective"] for entry in ledger)


def test_an_objective_that_is_not_a_metrics_column_stops_before_any_run(tmp_path, monkeypatch, capsys):
    """`nnexp objective=accuracy` through the command's main() in this process: its exit code and one line
    (the process's own: tests/test_usage_errors.py::test_the_cli_exits_2_with_one_line_and_no_run_folder)."""
    monkeypatch.chdir(tmp_path)
    assert nnexp_exit_code(monkeypatch, "objective=accuracy") == 2
    stderr = capsys.readouterr().err
    assert stderr.startswith("nnexp: error: objective=accuracy is not allowed") and stderr.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_the_objective_is_the_final_metric_it_names():
    from omegaconf import OmegaConf

    from nnexp.errors import ConfigError
    from nnexp.sweep.ledger import objective_value

    metrics = {"val_accuracy": 0.9, "val_loss": 0.3}
    assert objective_value(OmegaConf.create({"objective": "val_loss"}), metrics) == 0.3
    assert objective_value(OmegaConf.create({"objective": None}), metrics) is None
    with pytest.raises(ConfigError, match="objective=val_mse is not a final metric of this run"):
        objective_value(OmegaConf.create({"objective": "val_mse"}), metrics)


def test_the_ledger_reads_back_in_job_order_whatever_order_jobs_ended(tmp_path):
    from nnexp.sweep.ledger import append_line

    for job in (2, 0, 1):
        append_line(tmp_path / LEDGER_FILE, {"job": job, "status": "completed"})
    assert [entry["job"] for entry in read_ledger(tmp_path / LEDGER_FILE)] == [0, 1, 2]
    assert len((tmp_path / LEDGER_FILE).read_text().splitlines()) == 3


def test_a_damaged_ledger_line_is_named_and_the_others_still_read(tmp_path, caplog):
    from nnexp.sweep.ledger import append_line

    append_line(tmp_path / LEDGER_FILE, {"job": 1, "status": "completed"})
    with (tmp_path / LEDGER_FILE).open("a") as ledger:
        ledger.write('{"job": 0, "status": "compl\n[1, 2]\n')  # a line cut off; a line that is no entry
    append_line(tmp_path / LEDGER_FILE, {"job": 2, "status": "failed"})
    assert [entry["job"] for entry in read_ledger(tmp_path / LEDGER_FILE)] == [1, 2]
    assert "line 2 is damaged" in caplog.text
