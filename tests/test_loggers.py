"""TensorBoard and MLflow hold what metrics.csv and summary.json hold; a missing extra is one line."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

import nnexp
from nnexp.errors import ConfigError
from nnexp.runs.loggers import build_loggers

QUICK = ["trainer.epochs=2"]


def last_metrics_row(run_dir: Path) -> dict[str, float]:
    rows = list(csv.DictReader((run_dir / "metrics.csv").open()))
    return {key: float(value) for key, value in rows[-1].items() if value != ""}


def test_tensorboard_holds_the_same_metrics_as_the_csv_and_the_summary(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result = nnexp.run([*QUICK, "logger=[csv,tensorboard]"], output_dir=tmp_path / "run")
    [event_file] = (result.run_dir / "tensorboard").glob("events.out.tfevents.*")
    events = EventAccumulator(str(event_file.parent))
    events.Reload()
    scalars = {tag: events.Scalars(tag) for tag in events.Tags()["scalars"]}

    row = last_metrics_row(result.run_dir)
    assert [event.step for event in scalars["val_accuracy"]] == [1, 2]
    for column in ("train_loss", "train_accuracy", "val_loss", "val_accuracy"):
        assert scalars[column][-1].value == pytest.approx(row[column], rel=1e-6)
    final = json.loads((result.run_dir / "summary.json").read_text())["metrics"]["final"]
    assert set(final) <= {tag.removeprefix("final/") for tag in scalars}
    for column, value in final.items():
        assert scalars[f"final/{column}"][-1].value == pytest.approx(value, rel=1e-6)


def test_mlflow_holds_the_same_metrics_and_the_config(tmp_path):
    from mlflow import MlflowClient

    store = tmp_path / "mlruns"
    result = nnexp.run(
        [*QUICK, "logger=[csv,mlflow]", f"logger.mlflow.store={store}"], output_dir=tmp_path / "run"
    )
    client = MlflowClient(f"sqlite:///{store / 'mlflow.db'}")
    [run] = client.search_runs([client.get_experiment_by_name("nnexp").experiment_id])
    assert run.info.status == "FINISHED" and run.info.run_name == "run"
    assert run.data.params["optim.lr"] == "0.001" and run.data.params["trainer.epochs"] == "2"

    final = json.loads((result.run_dir / "summary.json").read_text())["metrics"]["final"]
    for column, value in final.items():
        assert run.data.metrics[f"final_{column}"] == pytest.approx(value, rel=1e-9)
    history = client.get_metric_history(run.info.run_id, "val_accuracy")
    assert [metric.step for metric in history] == [1, 2]
    assert history[-1].value == pytest.approx(last_metrics_row(result.run_dir)["val_accuracy"])


def test_a_logger_whose_package_is_missing_names_the_pip_command(monkeypatch, tmp_path):
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *args: None if name == "mlflow" else real_find_spec(name, *args),
    )
    from nnexp.api import compose

    with pytest.raises(
        ConfigError, match=r"logger=mlflow needs the mlflow package: pip install 'nnexp\[mlflow\]'"
    ):
        build_loggers(compose(["logger=mlflow"]), tmp_path)


def test_the_default_is_metrics_csv_alone(tmp_path):
    from nnexp.api import compose

    cfg = compose([])
    assert list(cfg.logger) == ["csv"]
    assert build_loggers(cfg, tmp_path) == []


def test_an_unreachable_tracking_server_is_one_line_before_anything_is_kept(tmp_path):
    pytest.importorskip("mlflow")
    from conftest import run_nnexp

    result = run_nnexp("logger=[csv,mlflow]", "logger.mlflow.tracking_uri=http://127.0.0.1:9", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "the MLflow server does not answer" in result.stderr and len(result.stderr.splitlines()) == 1
    assert sorted(tmp_path.iterdir()) == []  # no run folder, no mlruns/
