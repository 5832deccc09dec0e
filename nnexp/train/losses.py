"""The training criterion, resolved against the task of the data."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from nnexp.data import DataSpec

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

DEFAULT_FOR_TASK = {"classification": "cross_entropy", "regression": "mse", "language_model": "cross_entropy"}


def resolve_loss_name(name: str, spec: DataSpec) -> str:
    """`auto` becomes the task's usual loss (config/data_fit.py has checked that `name` fits the task)."""
    return DEFAULT_FOR_TASK[spec.task] if name == "auto" else name


def build_loss(name: str, spec: DataSpec) -> LossFn:
    name = resolve_loss_name(name, spec)
    if name == "mse_onehot":
        num_classes = spec.num_outputs

        def mse_onehot(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
            return F.mse_loss(outputs, F.one_hot(targets, num_classes).to(outputs.dtype))

        return mse_onehot
    return {"cross_entropy": F.cross_entropy, "mse": F.mse_loss, "l1": F.l1_loss}[name]
