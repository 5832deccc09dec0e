"""Regularisers that are not a constructor argument: the L1 penalty and early stopping.

(L2 is the optimiser's weight decay and dropout is a model argument; the runner passes them there.)
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import torch
from torch import nn


def l1_penalty(strength: float) -> Callable[[nn.Module], torch.Tensor]:
    """strength * sum(|w|) over weight matrices and kernels; biases and norm scales are left free."""

    def penalty(model: nn.Module) -> torch.Tensor:
        weights = [p for p in model.parameters() if p.dim() > 1]
        return strength * sum(w.abs().sum() for w in weights)

    return penalty


class EarlyStopping:
    """Watches one metrics column; says when it has not improved for `patience` evaluations."""

    def __init__(
        self,
        monitor: str,
        mode: str,
        patience: int,
        min_delta: float = 0.0,
        restore_best: bool = True,
    ) -> None:
        self.monitor = monitor
        self.sign = 1.0 if mode == "max" else -1.0
        self.patience = patience
        self.min_delta = min_delta
        self.restore_best = restore_best
        self.best = math.nan
        self.best_epoch = 0
        self.best_state: dict[str, torch.Tensor] | None = None
        self.waited = 0

    def update(self, epoch: int, metrics: dict[str, float], model: nn.Module) -> bool:
        """Record this epoch's metrics; True when training should stop."""
        value = metrics.get(self.monitor, math.nan)
        if math.isnan(value):
            return False  # not evaluated this epoch
        if math.isnan(self.best) or self.sign * (value - self.best) > self.min_delta:
            self.best, self.best_epoch, self.waited = value, epoch, 0
            if self.restore_best:
                self.best_state = copy.deepcopy(model.state_dict())
            return False
        self.waited += 1
        return self.waited > self.patience

    def state_dict(self) -> dict:
        return {
            "best": self.best,
            "best_epoch": self.best_epoch,
            "waited": self.waited,
            "best_state": self.best_state,
        }

    def load_state_dict(self, state: dict) -> None:
        self.best, self.best_epoch = state["best"], state["best_epoch"]
        self.waited, self.best_state = state["waited"], state["best_state"]

    def restore(self, model: nn.Module) -> None:
        if self.restore_best and self.best_state is not None:
            model.load_state_dict(self.best_state)
