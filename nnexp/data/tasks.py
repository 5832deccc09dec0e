"""What each task (`data.task`) asks of the training step and of the views: one object per task.

The spec keeps the task's name, as the user typed it and as summary.json records it; `task_of` turns that
name into the object, and is the only place the name is read. Every later stage asks the object (how to
call the model, what the loss compares, what a batch counts, what the outputs are) instead of comparing
names, so a task is described here once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from nnexp.data import TaskName

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # as train/losses.py builds it


class Task:
    """Classification and regression: `model(inputs)` gives (B, outputs), one row per example."""

    name: TaskName
    metrics: tuple[str, ...]  # the columns of metrics.csv, after train_ and val_
    output_unit: str  # what num_outputs counts: classes, targets or tokens
    predicts_classes = False  # outputs are class scores: the prediction is the largest, scored by accuracy
    predicts_numbers = False  # outputs are the targets' values: scored by their errors (mse, mae)
    generates_text = False  # a language model: token ids in, next-token logits out, with a hidden state

    def forward(self, model: nn.Module, inputs: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        """(outputs, the state to carry to the next batch): None, as a feed-forward model keeps none."""
        return model(inputs), None

    def loss(self, loss_fn: LossFn, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return loss_fn(outputs, targets)

    def count(self, targets: torch.Tensor) -> int:
        """How many examples a batch holds, the weight of its loss in the split's mean."""
        return len(targets)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Classification(Task):
    name = "classification"
    metrics = ("loss", "accuracy")
    output_unit = "classes"
    predicts_classes = True


class Regression(Task):
    name = "regression"
    metrics = ("loss", "mse", "mae")
    output_unit = "targets"
    predicts_numbers = True


class LanguageModel(Task):
    """Batches of (B, T) token ids; the model hands back its hidden state with the (B, T, V) logits."""

    name = "language_model"
    metrics = ("loss", "perplexity")  # per token
    output_unit = "tokens"
    generates_text = True

    def forward(self, model: nn.Module, inputs: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        return model(inputs, state)  # (B, T, V) logits and the state after the last step

    def loss(self, loss_fn: LossFn, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        # Every token is an example of its own: (B * T, V) logits against (B * T,) next tokens.
        return loss_fn(outputs.reshape(-1, outputs.shape[-1]), targets.reshape(-1))

    def count(self, targets: torch.Tensor) -> int:
        """How many tokens a batch predicts: a language model's loss is a mean per token."""
        return targets.numel()


TASKS: dict[str, Task] = {task.name: task for task in (Classification(), Regression(), LanguageModel())}


def task_of(name: str) -> Task:
    """The task object for a spec's `task` (the one place a task's name is looked up)."""
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"task {name!r} is not one of {', '.join(TASKS)}") from None
