"""What the model learned, in the run folder: every test example's prediction, the confusion matrix and
per-class metrics, pictures of examples, weights and fits, per-step losses, and layer output shapes.

The files are read back as a user would (csv, json, PNG headers) and checked against each other and
against the run's own summary.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import nnexp
from conftest import compose_config, copy_run, read_summary, resume_in_process, write_fish_csv
from nnexp.config.checks import check_config
from nnexp.errors import ConfigError
from nnexp.look import figures, views
from nnexp.look.predictions import per_example_loss
from nnexp.models.cnn import CNN
from nnexp.models.summary import format_parameter_counts, parameter_counts

IMAGE_VIEWS = ("confusion_matrix.png", "predictions.png", "top_losses.png", "weights.png")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_the_default_run_writes_every_test_digit_and_the_per_class_recall_agrees_everywhere(session_runs):
    """`nnexp` on the digits: predictions.csv has the 360 test images, and the recall per class in
    summary.json is the one the confusion matrix and predictions.csv give (the console's table of them:
    test_the_summary_records_the_per_class_metrics_as_json)."""
    run = session_runs("trainer.epochs=2")
    summary = read_summary(run)
    for name in IMAGE_VIEWS:
        assert (run / name).read_bytes()[:8] == PNG_SIGNATURE, name

    rows = read_rows(run / "predictions.csv")
    assert len(rows) == 360 == summary["data"]["sizes"]["test"]
    assert [int(row["index"]) for row in rows] == list(range(360))
    targets = np.array([int(row["target"]) for row in rows])
    predicted = np.array([int(row["prediction"]) for row in rows])
    losses = np.array([float(row["loss"]) for row in rows])
    final = summary["metrics"]["final"]
    assert np.mean(predicted == targets) == pytest.approx(final["test_accuracy"], abs=1e-9)
    assert losses.mean() == pytest.approx(final["test_loss"], rel=1e-4)
    # cross-entropy is -log of the true class's probability
    for row in rows[:20]:
        assert float(row["loss"]) == pytest.approx(-math.log(float(row["prob_target"])), rel=1e-3, abs=1e-6)

    matrix_rows = read_rows(run / "confusion_matrix.csv")
    matrix = np.array([[int(row[str(k)]) for k in range(10)] for row in matrix_rows])
    assert matrix.sum() == 360
    per_class = summary["per_class"]
    assert per_class["classes"] == [str(k) for k in range(10)] and per_class["split"] == "test"
    for k in range(10):
        from_matrix = matrix[k, k] / matrix[k].sum()
        from_csv = np.mean(predicted[targets == k] == k)
        assert per_class["recall"][k] == pytest.approx(from_matrix, abs=1e-6)
        assert per_class["recall"][k] == pytest.approx(from_csv, abs=1e-6)
        assert per_class["precision"][k] == pytest.approx(matrix[k, k] / matrix[:, k].sum(), abs=1e-6)
        assert per_class["support"][k] == (targets == k).sum()


def test_a_fish_regression_writes_its_fit_and_a_prediction_per_test_fish_with_the_summarys_mse(tmp_path):
    """`nnexp experiment=fish_linreg`: fit.png, and predictions.csv's mean squared error is test_mse."""
    fish = write_fish_csv(tmp_path / "Fish.csv", rows=60)
    result = nnexp.run(
        ["experiment=fish_linreg", f"data.path={fish}", "trainer.epochs=20"], output_dir=tmp_path / "run"
    )
    run = result.run_dir
    summary = read_summary(run)
    assert (run / "fit.png").read_bytes()[:8] == PNG_SIGNATURE
    rows = read_rows(run / "predictions.csv")
    assert len(rows) == summary["data"]["sizes"]["test"] == 50
    errors = [float(row["prediction"]) - float(row["target"]) for row in rows]
    assert np.mean(np.square(errors)) == pytest.approx(summary["metrics"]["final"]["test_mse"], rel=1e-5)
    # in the file's own units too: the z-score undone gives back the CSV's weights
    weights = sorted(float(line.split(",")[1]) for line in fish.read_text("utf-8-sig").splitlines()[1:])
    assert all(min(abs(float(row["Weight"]) - w) for w in weights) < 0.01 for row in rows)
    assert not (run / "confusion_matrix.csv").exists() and not (run / "weights.png").exists()


def test_a_run_on_every_row_shows_its_fit_on_the_rows_it_trained_on(tmp_path):
    """data.test_size=0 leaves no test split: predictions.csv and fit.png are of the training rows."""
    fish = write_fish_csv(tmp_path / "Fish.csv", rows=40)
    overrides = ["experiment=fish_linreg", f"data.path={fish}", "data.test_size=0", "trainer.epochs=3"]
    run = nnexp.run(overrides, output_dir=tmp_path / "run").run_dir
    summary = read_summary(run)
    rows = read_rows(run / "predictions.csv")
    assert {row["split"] for row in rows} == {"train"}
    assert len(rows) == summary["data"]["sizes"]["train"] == 40
    errors = [float(row["prediction"]) - float(row["target"]) for row in rows]
    assert np.mean(np.square(errors)) == pytest.approx(summary["metrics"]["final"]["train_mse"], rel=1e-5)
    assert (run / "fit.png").read_bytes()[:8] == PNG_SIGNATURE


def test_predictions_of_the_validation_split_are_written_on_request_and_refused_without_one(
    tmp_path, monkeypatch
):
    """outputs.predictions=both writes validation then test rows; with no validation split, =val is a
    one-line refusal (exit 2) before any folder exists."""
    both = nnexp.run(["trainer.epochs=1", "outputs.predictions=both"], output_dir=tmp_path / "both")
    splits = [row["split"] for row in read_rows(both.run_dir / "predictions.csv")]
    assert splits == ["val"] * 144 + ["test"] * 360

    fish = write_fish_csv(tmp_path / "Fish.csv")
    monkeypatch.chdir(tmp_path)  # a new run folder would be outputs/DATE/TIME here
    with pytest.raises(ConfigError) as refused:
        nnexp.run(["experiment=fish_linreg", f"data.path={fish}", "outputs.predictions=val"])
    assert refused.value.exit_code == 2
    assert "outputs.predictions=val needs a validation split" in str(refused.value)
    assert len(str(refused.value).splitlines()) == 1
    assert not (tmp_path / "outputs").exists()


def test_views_off_writes_none_of_them(tmp_path):
    result = nnexp.run(["trainer.epochs=1", "outputs.views=false"], output_dir=tmp_path / "run")
    written = {path.name for path in result.run_dir.iterdir()}
    assert written.isdisjoint({"predictions.csv", "confusion_matrix.csv", *IMAGE_VIEWS})
    assert "per_class" not in result.summary and "learning_curves.png" in written


def test_a_smoke_run_predicts_only_the_batches_it_evaluates(tmp_path):
    """debug=smoke evaluates three batches of 64: predictions.csv holds those, and stays fast."""
    result = nnexp.run(["debug=smoke"], output_dir=tmp_path / "run")
    assert len(read_rows(result.run_dir / "predictions.csv")) == 3 * 64
    assert (result.run_dir / "predictions.png").is_file()


def test_a_picture_that_cannot_be_drawn_is_a_warning_and_the_run_completes(tmp_path, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("no room for pictures")

    monkeypatch.setattr(figures, "save_image_grid", broken)
    with caplog.at_level(logging.WARNING, logger="nnexp"):
        result = nnexp.run(["trainer.epochs=1"], output_dir=tmp_path / "run")
    assert result.status == "completed"
    assert (result.run_dir / "predictions.csv").is_file() and (
        result.run_dir / "confusion_matrix.png"
    ).is_file()
    assert not (result.run_dir / "predictions.png").exists()
    assert "could not write predictions.png: no room for pictures" in caplog.text


def test_fashion_images_get_their_class_names_and_a_conv_net_its_filters(tmp_path):
    result = nnexp.run(
        ["data=fashion_mnist", "data.synthetic=true", "data.synthetic_sizes=[600,100]", "data.val_size=100"]
        + ["model=cnn", "trainer.epochs=1"],
        output_dir=tmp_path / "run",
    )
    rows = read_rows(result.run_dir / "predictions.csv")
    assert len(rows) == 100 and {"target_name", "prediction_name"} <= set(rows[0])
    assert result.summary["per_class"]["classes"][9] == "Ankle boot"
    assert (result.run_dir / "weights.png").read_bytes()[:8] == PNG_SIGNATURE
    assert figures.first_layer_pictures(np.zeros((8, 1, 3, 3)), (1, 28, 28)).shape == (8, 3, 3)
    assert figures.first_layer_pictures(np.zeros((16, 784)), (1, 28, 28)).shape == (16, 28, 28)


@pytest.mark.parametrize("loss_name", ["cross_entropy", "mse_onehot", "mse", "l1"])
def test_the_per_example_losses_average_to_the_batch_loss(loss_name):
    outputs = torch.randn(7, 3)
    if loss_name in ("cross_entropy", "mse_onehot"):
        targets = torch.randint(0, 3, (7,))
        expected = (
            F.cross_entropy(outputs, targets)
            if loss_name == "cross_entropy"
            else F.mse_loss(outputs, F.one_hot(targets, 3).float())
        )
    else:
        targets = torch.randn(7, 3)
        expected = (F.mse_loss if loss_name == "mse" else F.l1_loss)(outputs, targets)
    assert per_example_loss(loss_name, outputs, targets).shape == (7,)
    assert per_example_loss(loss_name, outputs, targets).mean().item() == pytest.approx(
        expected.item(), rel=1e-6
    )


def test_the_layer_table_shows_each_layers_output_shape():
    model = CNN((1, 8, 8), 10, channels=[8, 16], hidden=[32])
    counts = parameter_counts(model, torch.zeros(1, 1, 8, 8))
    shapes = {row["layer"]: row["output_shape"] for row in counts["layers"]}
    assert shapes == {
        "features.0.0": [8, 8, 8],
        "features.1.0": [16, 4, 4],
        "head.1": [32],
        "head.3": [10],
    }
    assert "16 x 4 x 4" in format_parameter_counts(counts)
    assert model.training  # the forward pass put the model back as it was


def test_steps_csv_logs_every_nth_step_and_a_resume_repeats_none(session_runs, tmp_path):
    """trainer.log_every_n_steps=5: steps.csv gets every 5th step; after a stop between an epoch's rows
    and its checkpoint, the resumed run writes each step once; the learning curves draw them."""
    run = copy_run(session_runs("trainer.epochs=2", "trainer.log_every_n_steps=5"), tmp_path / "run")
    rows = read_rows(run / "steps.csv")
    steps_per_epoch = math.ceil(1293 / 32)  # 41
    assert [int(row["step"]) for row in rows] == list(range(5, 2 * steps_per_epoch + 1, 5))
    assert {row["epoch"] for row in rows} == {"1", "2"} and all(float(row["lr"]) == 0.001 for row in rows)
    # as if epoch 3's rows were written and the run stopped before its checkpoint
    with (run / "steps.csv").open("a") as handle:
        handle.write("85,3,0.5,0.001\n")
    # `nnexp resume=RUN trainer.epochs=4 force=true`, as nnexp/cli/command.py runs it, in this process
    assert resume_in_process(run, "trainer.epochs=4", "force=true").status == "completed"
    steps = [int(row["step"]) for row in read_rows(run / "steps.csv")]
    assert steps == list(range(5, 4 * steps_per_epoch + 1, 5))
    assert (run / "learning_curves.png").read_bytes()[:8] == PNG_SIGNATURE


def test_step_logging_is_off_by_default(tmp_path):
    result = nnexp.run(["trainer.epochs=1"], output_dir=tmp_path / "run")
    assert not (result.run_dir / "steps.csv").exists()


def test_tensorboard_gets_the_pictures_and_histograms_of_weights_and_gradients(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result = nnexp.run(["trainer.epochs=2", "logger=[csv,tensorboard]"], output_dir=tmp_path / "run")
    events = EventAccumulator(
        str(result.run_dir / "tensorboard"), size_guidance={"images": 0, "histograms": 0}
    )
    events.Reload()
    tags = events.Tags()
    assert {f"views/{Path(name).stem}" for name in IMAGE_VIEWS} <= set(tags["images"])
    assert [event.step for event in events.Histograms("weights/layers.1.weight")] == [1, 2]
    assert [event.step for event in events.Histograms("gradients/layers.1.weight")] == [1, 2]


def test_the_summary_records_the_per_class_metrics_as_json(tmp_path, piped_console):
    result = nnexp.run(["trainer.epochs=1"], output_dir=tmp_path / "run")
    shown = piped_console()
    assert "per class (test)" in shown and "precision" in shown and "recall" in shown  # the console's table
    saved = json.loads((result.run_dir / "summary.json").read_text())
    assert saved["per_class"] == result.summary["per_class"]
    assert set(saved["per_class"]) == {"split", "classes", "precision", "recall", "f1", "support"}
    assert views.per_class_view(saved["per_class"]) is not None


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("outputs.predictions=train", "outputs.predictions=train is not allowed: use test, val or both"),
        ("outputs.views=maybe", "outputs.views=maybe is not allowed: use true or false"),
        (
            "trainer.log_every_n_steps=0",
            "trainer.log_every_n_steps=0 is not allowed: use null (off) or a whole",
        ),
        ("data.val_fraction=0", "outputs.predictions=both needs a validation split"),
    ],
)
def test_a_bad_outputs_setting_is_named_with_its_fix(override, message):
    cfg = compose_config("outputs.predictions=both" if "val_fraction" in override else "seed=0", override)
    with pytest.raises(ConfigError, match=re.escape(message)):
        check_config(cfg)


def test_mlflow_keeps_the_views_as_artifacts_of_the_run(tmp_path):
    from mlflow import MlflowClient

    store = tmp_path / "mlruns"
    nnexp.run(
        ["trainer.epochs=1", "logger=[csv,mlflow]", f"logger.mlflow.store={store}"],
        output_dir=tmp_path / "run",
    )
    client = MlflowClient(f"sqlite:///{store / 'mlflow.db'}")
    [run] = client.search_runs([client.get_experiment_by_name("nnexp").experiment_id])
    kept = {artifact.path for artifact in client.list_artifacts(run.info.run_id)}
    assert {"predictions.csv", "confusion_matrix.csv", *IMAGE_VIEWS} <= kept


def test_the_console_shows_many_classes_in_one_line():
    """Up to 12 classes a table of precision and recall per class; more, one line naming the extremes."""
    names = [f"class{k}" for k in range(20)]
    recall = [0.5 + k / 40 for k in range(20)]
    metrics = {
        "split": "test",
        "classes": names,
        "precision": recall[::-1],
        "recall": recall,
        "support": [5] * 20,
    }
    line = views.per_class_view(metrics)
    assert isinstance(line, str) and "\n" not in line
    assert "recall from 0.5 (class0) to 0.975 (class19)" in line
    assert not isinstance(views.per_class_view({**metrics, "classes": names[:10]} | _first(metrics, 10)), str)


def _first(metrics: dict, count: int) -> dict:
    return {key: metrics[key][:count] for key in ("precision", "recall", "support")}


def test_the_per_class_counts_are_scikit_learns():
    """NumPy's counts (no scikit-learn import in a run) equal scikit-learn's metrics, empty classes too."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    from nnexp.data import DataSpec
    from nnexp.look.predictions import Predictions, per_class

    rng = np.random.default_rng(0)
    targets = rng.integers(0, 5, 300)
    targets[targets == 4] = 3  # class 4 never occurs: its recall is 0, not a division by zero
    outputs = rng.normal(size=(300, 6))
    outputs[np.arange(300), targets] += 1.5
    found = Predictions("test", "classification", np.arange(300), targets, outputs, np.zeros(300))
    spec = DataSpec("toy", "classification", (2,), 6)
    matrix, metrics = per_class(found, spec)
    labels = list(range(6))
    assert (matrix == confusion_matrix(targets, outputs.argmax(axis=1), labels=labels)).all()
    expected = precision_recall_fscore_support(
        targets, outputs.argmax(axis=1), labels=labels, zero_division=0
    )
    for name, values in zip(("precision", "recall", "f1", "support"), expected, strict=True):
        assert metrics[name] == pytest.approx(list(values), abs=1e-6), name
