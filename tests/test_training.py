"""Losses, the training step, metrics, regularisers and the files of a run, without the CLI."""

from __future__ import annotations

import csv
import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nnexp.config.data_fit import check_loss
from nnexp.data import DataSpec, TensorSplit
from nnexp.data.tasks import task_of
from nnexp.errors import ConfigError
from nnexp.runs.folder import RunFolder
from nnexp.train.loop import evaluate, train_one_epoch
from nnexp.train.losses import build_loss, resolve_loss_name
from nnexp.train.metrics import MetricAccumulator, better
from nnexp.train.regularization import EarlyStopping, l1_penalty

CLASSIFICATION = task_of("classification")
REGRESSION = task_of("regression")

CLASSES = DataSpec("toy", "classification", (2,), 3)
VALUES = DataSpec("toy", "regression", (2,), 1)


def test_auto_loss_follows_the_task():
    assert resolve_loss_name("auto", CLASSES) == "cross_entropy"
    assert resolve_loss_name("auto", VALUES) == "mse"


@pytest.mark.parametrize(
    ("name", "spec", "hint"),
    [
        ("mse", CLASSES, "use loss=mse_onehot"),
        ("cross_entropy", VALUES, "use loss=mse or loss=l1"),
        ("mse_onehot", VALUES, "use loss=mse"),
    ],
)
def test_a_loss_that_does_not_fit_the_task_is_refused(name, spec, hint):
    with pytest.raises(ConfigError, match=hint):
        check_loss(name, spec)


def test_mse_onehot_compares_outputs_with_one_hot_targets():
    loss = build_loss("mse_onehot", CLASSES)
    outputs = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    assert loss(outputs, torch.tensor([0, 2])).item() == pytest.approx(1 / 6)


def test_metrics_are_size_weighted_means():
    metrics = MetricAccumulator(CLASSIFICATION, torch.device("cpu"))
    metrics.update(torch.tensor([[2.0, 0.0]] * 3), torch.tensor([0, 0, 1]), torch.tensor(1.0))
    metrics.update(torch.tensor([[0.0, 2.0]]), torch.tensor([1]), torch.tensor(3.0))
    assert metrics.compute() == {"loss": pytest.approx(1.5), "accuracy": pytest.approx(0.75)}


def test_better_knows_which_way_each_metric_improves():
    assert better("val_accuracy", 0.9, 0.8) and not better("val_loss", 0.9, 0.8)
    assert better("train_loss", 1.0, math.nan)


def regression_problem() -> TensorSplit:
    torch.manual_seed(0)
    inputs = torch.randn(256, 2)
    return TensorSplit(inputs, inputs @ torch.tensor([[2.0], [-1.0]]) + 0.5)


def test_training_epochs_reduce_the_loss():
    split, model = regression_problem(), nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    before = evaluate(model, split, F.mse_loss, REGRESSION, 1024)["loss"]
    for epoch in range(5):
        train_one_epoch(model, split.batches(32, torch.Generator().manual_seed(epoch)), F.mse_loss,
                        optimizer, REGRESSION)  # fmt: skip
    after = evaluate(model, split, F.mse_loss, REGRESSION, 1024)
    assert after["loss"] < before / 100
    assert after["mse"] == pytest.approx(after["loss"], rel=1e-5)


def test_evaluation_reads_at_most_max_batches_of_a_split():
    seen: list[int] = []

    class Counting(nn.Linear):
        def forward(self, inputs: torch.Tensor) -> torch.Tensor:
            seen.append(len(inputs))
            return super().forward(inputs)

    split = TensorSplit(torch.randn(1000, 3), torch.randint(0, 2, (1000,)))
    loss = nn.CrossEntropyLoss()
    evaluate(Counting(3, 2), split, loss, task=CLASSIFICATION, batch_size=10, max_batches=3)
    assert seen == [10, 10, 10]
    seen.clear()
    evaluate(Counting(3, 2), split, loss, task=CLASSIFICATION, batch_size=10)
    assert sum(seen) == 1000


def test_gradient_clipping_bounds_the_step_to_the_given_norm():
    def one_full_batch_step(clip: float | None) -> float:
        split, model = regression_problem(), nn.Linear(2, 1)
        nn.init.zeros_(model.weight), nn.init.zeros_(model.bias)
        optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
        train_one_epoch(model, split.batches(256), F.mse_loss, optimizer, REGRESSION, clip_grad_norm=clip)
        return torch.cat([model.weight.flatten(), model.bias]).norm().item()

    assert one_full_batch_step(None) > 1.0
    assert one_full_batch_step(0.01) == pytest.approx(0.01, rel=1e-4)


def test_l1_penalty_sums_absolute_weights_but_not_biases():
    model = nn.Linear(2, 1)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, -2.0]]))
        model.bias.fill_(100.0)
    assert l1_penalty(0.5)(model).item() == pytest.approx(1.5)


def test_early_stopping_waits_patience_epochs_and_restores_the_best_weights():
    model = nn.Linear(1, 1)
    stopper = EarlyStopping(monitor="val_loss", mode="min", patience=2)
    assert not stopper.update(1, {"val_loss": 1.0}, model)
    best_weight = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    assert not stopper.update(2, {"val_loss": 1.5}, model)
    assert not stopper.update(3, {"val_loss": math.nan}, model)  # not evaluated: no verdict
    assert not stopper.update(4, {"val_loss": 1.2}, model)
    assert stopper.update(5, {"val_loss": 1.1}, model)
    stopper.restore(model)
    assert torch.equal(model.weight, best_weight) and stopper.best_epoch == 1


def test_run_folder_writes_metrics_rows_summary_and_a_safe_checkpoint(tmp_path):
    folder = RunFolder(tmp_path / "run")
    folder.append_metrics({"epoch": 1, "train_loss": 0.5, "val_loss": math.nan})
    folder.append_metrics({"epoch": 2, "train_loss": 0.25, "val_loss": 0.3})
    rows = list(csv.DictReader(folder.metrics_path.open()))
    assert rows == [
        {"epoch": "1", "train_loss": "0.5", "val_loss": ""},
        {"epoch": "2", "train_loss": "0.25", "val_loss": "0.3"},
    ]
    folder.write_summary({"status": "failed", "best": math.nan, "worst": math.inf})
    assert json.loads(folder.summary_path.read_text()) == {"status": "failed", "best": None, "worst": "inf"}
    model = nn.Linear(2, 1)
    folder.save_checkpoint({"model": model.state_dict(), "epoch": 2, "config": {"seed": 0}})
    loaded = torch.load(folder.checkpoint_path, weights_only=True)
    assert torch.equal(loaded["model"]["weight"], model.weight) and loaded["epoch"] == 2
    assert [p.name for p in folder.path.iterdir() if p.name.startswith(".")] == []
