"""The training criterion, resolved against the task of the data."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from nnexp.data import DataSpec
from nnexp.errors import ConfigError

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

DEFAULT_FOR_TASK = {"classification": "cross_entropy", "regression": "mse", "language_model": "cross_entropy"}
TASKS_OF_LOSS = {
    "cross_entropy": ("classification", "language_model"),
    "mse_onehot": ("classification",),
    "mse": ("regression",),
    "l1": ("regression",),
}
HINTS = {
    ("mse", "classification"): "use loss=mse_onehot for MSE against one-hot targets",
    ("l1", "classification"): "use loss=cross_entropy or loss=mse_onehot",
    ("cross_entropy", "regression"): "use loss=mse or loss=l1",
    ("mse_onehot", "regression"): "use loss=mse",
}


def resolve_loss_name(name: str, spec: DataSpec) -> str:
    """`auto` becomes the task's usual loss; a loss that does not fit the task is refused."""
    if name == "auto":
        return DEFAULT_FOR_TASK[spec.task]
    if spec.task not in TASKS_OF_LOSS[name]:
        hint = HINTS.get((name, spec.task), "use loss=auto")
        raise ConfigError(f"loss={name} does not fit {spec.name}, a {spec.task} data set: {hint}")
    return name


def build_loss(name: str, spec: DataSpec) -> LossFn:
    name = resolve_loss_name(name, spec)
    if name == "mse_onehot":
        num_classes = spec.num_outputs

        def mse_onehot(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
            return F.mse_loss(outputs, F.one_hot(targets, num_classes).to(outputs.dtype))

        return mse_onehot
    return {"cross_entropy": F.cross_entropy, "mse": F.mse_loss, "l1": F.l1_loss}[name]
