"""The best epoch so far by one metrics column, and its weights: what `trainer.test_on=best` tests and
checkpoint_best.pt keeps (runs/best.py writes the file; this module only watches and remembers).

The column is the one early stopping watches when `regularization=early_stopping` is on, so the two agree
on what "best" means; otherwise val_loss, or for data without a validation split train_eval_loss
(`trainer.eval_train`, the training split evaluated) and only without that the epoch's running mean.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn


class BestWeights:
    """Watches `monitor` (lower is better with mode min); with `keep_weights` (trainer.test_on=best) also
    keeps a CPU copy of the best epoch's weights, which checkpoint_best.pt holds."""

    def __init__(self, monitor: str, mode: str = "min", keep_weights: bool = True) -> None:
        self.monitor, self.mode, self.keep_weights = monitor, mode, keep_weights
        self.value = math.nan
        self.epoch = 0  # 0: no epoch evaluated yet
        self.weights: dict[str, torch.Tensor] | None = None
        self.unsaved = False  # better weights than checkpoint_best.pt holds

    @classmethod
    def for_run(
        cls, early_stopping: Any, has_val: bool, keep_weights: bool, eval_train: bool = False
    ) -> BestWeights:
        if early_stopping is not None:
            return cls(early_stopping.monitor, "max" if early_stopping.sign > 0 else "min", keep_weights)
        without_val = "train_eval_loss" if eval_train else "train_loss"
        return cls("val_loss" if has_val else without_val, keep_weights=keep_weights)

    def update(self, epoch: int, row: dict[str, Any], model: nn.Module) -> bool:
        """This epoch's metrics row; True (and its weights kept) when it is the best so far."""
        value = row.get(self.monitor, math.nan)
        if not isinstance(value, (int, float)) or math.isnan(value):
            return False  # not evaluated this epoch (trainer.eval_every)
        sign = 1.0 if self.mode == "max" else -1.0
        if not math.isnan(self.value) and sign * (value - self.value) <= 0:
            return False
        self.value, self.epoch = float(value), epoch
        if not self.keep_weights:  # test_on=last: the epoch is recorded, no copy and no file
            return True
        self.unsaved = True
        # On the CPU: a second copy of a large model would halve the GPU memory left for training.
        self.weights = {
            name: tensor.detach().to("cpu", copy=True) for name, tensor in model.state_dict().items()
        }
        return True

    def record(self) -> dict[str, Any]:
        """What checkpoint.pt keeps of it (the weights live in checkpoint_best.pt)."""
        return {"monitor": self.monitor, "mode": self.mode, "value": self.value, "epoch": self.epoch}

    def load_record(self, record: dict[str, Any]) -> None:
        self.value, self.epoch = float(record["value"]), int(record["epoch"])
        self.weights, self.unsaved = None, False
