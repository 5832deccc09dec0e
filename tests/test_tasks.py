"""One training step for every task: the task object says how to call the model, what the loss compares and
what a batch counts, so train/loop.py has one `train_one_epoch` and one `evaluate` for all of them."""

from __future__ import annotations

import ast
import math
import typing
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from test_language_models import StateSpy
from torch import nn

from nnexp.data import TaskName, TensorSplit
from nnexp.data.tasks import task_of
from nnexp.data.text import TokenSplit
from nnexp.models.recurrent import GRU
from nnexp.train.loop import evaluate, train_one_epoch
from nnexp.train.metrics import MetricAccumulator

PACKAGE = Path(__file__).resolve().parents[1] / "nnexp"
CLASSIFICATION, REGRESSION, LANGUAGE_MODEL = (task_of(name) for name in typing.get_args(TaskName))


def test_every_task_a_spec_can_name_has_its_object_and_an_unknown_name_is_refused():
    assert [task.name for task in (CLASSIFICATION, REGRESSION, LANGUAGE_MODEL)] == list(
        typing.get_args(TaskName)
    )
    with pytest.raises(ValueError, match="classification, regression, language_model"):
        task_of("segmentation")


def test_each_task_says_what_its_outputs_are_and_which_metrics_score_them():
    kinds = {
        task.name: (
            task.predicts_classes,
            task.predicts_numbers,
            task.generates_text,
            task.output_unit,
            task.metrics,
        )
        for task in (CLASSIFICATION, REGRESSION, LANGUAGE_MODEL)
    }
    assert kinds == {
        "classification": (True, False, False, "classes", ("loss", "accuracy")),
        "regression": (False, True, False, "targets", ("loss", "mse", "mae")),
        "language_model": (False, False, True, "tokens", ("loss", "perplexity")),
    }
    for task in kinds:  # a split with no batches still has every column, as NaN
        empty = MetricAccumulator(task_of(task), torch.device("cpu")).compute()
        assert list(empty) == list(kinds[task][-1]) and all(math.isnan(value) for value in empty.values())


def test_a_language_model_scores_every_token_and_a_classifier_every_row():
    logits, tokens = torch.randn(2, 3, 5), torch.randint(0, 5, (2, 3))  # (B, T, V), (B, T)
    expected = F.cross_entropy(logits.reshape(6, 5), tokens.reshape(6))
    assert LANGUAGE_MODEL.loss(F.cross_entropy, logits, tokens) == expected
    assert LANGUAGE_MODEL.count(tokens) == 6
    assert CLASSIFICATION.count(torch.tensor([0, 1, 1])) == REGRESSION.count(torch.zeros(3, 2)) == 3


@pytest.mark.parametrize("partition", ["sequential", "random"])
def test_evaluation_carries_the_state_through_a_split_read_in_sequence_and_not_otherwise(partition):
    torch.manual_seed(0)
    spy, split = (
        StateSpy(GRU((5,), 7, hidden_size=4)),
        TokenSplit(torch.arange(300) % 7, num_steps=5, partition=partition),
    )
    evaluate(spy, split, F.cross_entropy, LANGUAGE_MODEL, batch_size=4)
    assert len(spy.received) > 2 and spy.received[0] is None
    if partition == "sequential":
        assert all(got is sent for got, sent in zip(spy.received[1:], spy.returned[:-1], strict=True))
    else:
        assert all(state is None for state in spy.received)


def test_one_training_step_trains_a_classifier_a_regression_and_a_language_model():
    torch.manual_seed(0)
    inputs = torch.randn(256, 4)
    classes = TensorSplit(inputs, (inputs[:, 0] > 0).long())
    values = TensorSplit(inputs, inputs @ torch.tensor([[1.0], [-2.0], [0.5], [0.0]]))
    text = TokenSplit(torch.arange(600) % 6, num_steps=6, partition="sequential")
    problems = [
        (CLASSIFICATION, nn.Linear(4, 2), classes, F.cross_entropy, 64, False),
        (REGRESSION, nn.Linear(4, 1), values, F.mse_loss, 64, False),
        (LANGUAGE_MODEL, GRU((6,), 6, hidden_size=16), text, F.cross_entropy, 8, True),
    ]
    for task, model, split, loss_fn, batch_size, carry_state in problems:
        optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
        before = evaluate(model, split, loss_fn, task, batch_size)
        for epoch in range(5):
            batches = split.batches(batch_size, torch.Generator().manual_seed(epoch))
            trained = train_one_epoch(model, batches, loss_fn, optimizer, task, carry_state=carry_state)
        after = evaluate(model, split, loss_fn, task, batch_size)
        assert list(after) == list(task.metrics), task
        assert after["loss"] < before["loss"] / 2, task
        # A language model's speed is counted in tokens: (B, T) targets, 8 x 6 a batch.
        assert ("tokens" in trained) == task.generates_text
    assert trained["tokens"] % (8 * 6) == 0


def test_the_package_has_one_training_step_and_reads_a_task_name_only_in_task_of():
    """Outside data/tasks.py, code asks the task object; only config/ compares the value a user typed."""
    names = set(typing.get_args(TaskName))
    steps, comparisons = [], []
    for path in sorted(PACKAGE.rglob("*.py")):
        where = path.relative_to(PACKAGE).as_posix()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and node.name == "train_one_epoch":
                steps.append(where)
            if isinstance(node, ast.Compare) and not where.startswith("config/"):
                operands = [node.left, *node.comparators]
                if any(isinstance(item, ast.Constant) and item.value in names for item in operands):
                    comparisons.append(f"{where}:{node.lineno}")
    assert steps == ["train/loop.py"]
    assert comparisons == []
