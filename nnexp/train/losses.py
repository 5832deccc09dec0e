"""The training criterion, resolved against the task of the data."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from nnexp.data import DataSpec
from nnexp.errors import ConfigError, Finding

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
# The classic mismatches, reported with their learner-diagnostics code and why they fail.
MISTAKES = {
    ("mse", "classification"): (
        "mse-on-class-indices",
        "MSE would compare the outputs with class numbers, as if class 9 were nine times class 1",
    ),
    ("cross_entropy", "regression"): (
        "cross-entropy-on-regression",
        "cross-entropy needs class labels, and the target is a continuous number",
    ),
}


def resolve_loss_name(name: str, spec: DataSpec) -> str:
    """`auto` becomes the task's usual loss; a loss that does not fit the task is refused."""
    if name == "auto":
        return DEFAULT_FOR_TASK[spec.task]
    if spec.task not in TASKS_OF_LOSS[name]:
        hint = HINTS.get((name, spec.task), "use loss=auto")
        message = f"loss={name} does not fit {spec.name}, a {spec.task} data set"
        if (name, spec.task) in MISTAKES:
            code, why = MISTAKES[name, spec.task]
            raise Finding(code, f"{message}: {why}", hint).refuse(ConfigError)
        raise ConfigError(f"{message}: {hint}")
    return name


def build_loss(name: str, spec: DataSpec) -> LossFn:
    name = resolve_loss_name(name, spec)
    if name == "mse_onehot":
        num_classes = spec.num_outputs

        def mse_onehot(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
            return F.mse_loss(outputs, F.one_hot(targets, num_classes).to(outputs.dtype))

        return mse_onehot
    return {"cross_entropy": F.cross_entropy, "mse": F.mse_loss, "l1": F.l1_loss}[name]
