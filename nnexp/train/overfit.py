"""`debug=overfit`: can the model learn a few batches by heart? The classic sanity check before a long run.

The first `trainer.overfit_batches` batches of the training split, in the split's own order, are trained
on every epoch; dropout is switched off (regularization=none removes the rest), and a classifier stops
as soon as it gets every example of them right. A model that cannot, has a bug (in the model, the loss,
the data's labels) or a learning rate that cannot work.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn


class FixedBatches:
    """The same batches every epoch, whatever order a shuffled epoch would ask for."""

    def __init__(self, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        self.fixed = batches

    @classmethod
    def first(cls, split: Any, batch_size: int, count: int) -> FixedBatches:
        batches = []
        for batch in split.batches(batch_size):  # unshuffled: the split's own first rows
            if len(batches) == count:
                break
            batches.append(batch)
        return cls(batches)

    def batches(self, batch_size: int, generator: torch.Generator | None = None) -> Iterator[Any]:
        return iter(self.fixed)


def without_dropout(model: nn.Module) -> int:
    """Switch every dropout layer off (p=0); returns how many there were."""
    layers = [module for module in model.modules() if isinstance(module, nn.modules.dropout._DropoutNd)]
    for layer in layers:
        layer.p = 0.0
    return len(layers)


def learned(row: dict[str, Any]) -> bool:
    """A classifier that got every training example of the epoch right; other tasks never stop early."""
    return row.get("train_accuracy", 0.0) >= 1.0


def verdict(count: int, history: list[dict[str, Any]]) -> str:
    """The console's last word on it."""
    last = history[-1] if history else {}
    if learned(last):
        return (
            f"overfit: the {count} batches are learned (train accuracy 1.0) after {last['epoch']} epochs: "
            f"the model, the loss and the optimiser can fit data"
        )
    if "train_accuracy" in last:
        return (
            f"overfit: after {last.get('epoch', 0)} epochs the {count} batches are not learned (train "
            f"accuracy {last['train_accuracy']:.4f}): check the model, the labels, the loss and optim.lr"
        )
    if not history:
        return f"overfit: {count} batches, no epoch trained"
    return (
        f"overfit: {count} batches, train loss {history[0]['train_loss']:.4g} at epoch "
        f"{history[0]['epoch']}, {last['train_loss']:.4g} at epoch {last['epoch']}: near 0 means learned"
    )


def start(train: Any, batch_size: int, count: int, model: nn.Module) -> FixedBatches:
    """The fixed batches to train on, and the model without dropout (logged: the config still says it)."""
    dropout = without_dropout(model)
    if dropout:
        logging.getLogger("nnexp").info("overfit: %d dropout layers switched off", dropout)
    return FixedBatches.first(train, batch_size, count)
