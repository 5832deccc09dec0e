"""Checks on each epoch's metrics row: a stuck loss, chance level, dead ReLUs, vanishing or exploding
gradients, and a widening gap between training and validation.

Everything is read from the rows (the probe's columns included), so a resumed run replays its history
through the same checks and reaches the same findings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from nnexp.data import DataBundle
from nnexp.diagnostics import Finding
from nnexp.diagnostics.probe import DEAD_RELU, GRAD_NORM
from nnexp.safeguards import StuckLossDetector

CHANCE_MARGIN = 0.02  # accuracy within this of chance counts as chance
CHANCE_LOSS_SHARE = 0.95  # a loss still at 95% of the chance-level loss counts as chance
OVERFIT_RISE = 0.10  # validation loss this far (relative) above its best, for `after_epochs` evaluations


@dataclass(frozen=True)
class WatchOptions:
    after_epochs: int = 5  # the chance-level and overfitting checks wait this many epochs
    after_steps: int = 100  # ... and the chance-level check this many optimiser steps (full-batch runs)
    steps_per_epoch: int = 1
    dead_relu_share: float = 0.5
    gradient_ratio: float = 1000.0
    stuck_epochs: int = 5
    stuck_tolerance: float = 1e-4


@dataclass(frozen=True)
class Chance:
    """What guessing scores on the training split, the level below which a model has learned something."""

    accuracy: float | None = None  # classification: the larger of 1/C and the majority class's share
    loss: float | None = None  # ln V for a language model; the target variance for MSE
    metric: str = "loss"

    @classmethod
    def of(cls, data: DataBundle) -> Chance:
        task, outputs = data.spec.task, data.spec.num_outputs
        if task == "classification":
            counts = torch.bincount(data.train.targets.cpu(), minlength=outputs)
            majority = (counts.max() / counts.sum()).item()
            return cls(accuracy=max(1 / outputs, majority))
        if task == "regression":
            return cls(loss=data.train.targets.double().var(correction=0).item(), metric="mse")
        return cls(loss=math.log(outputs))


class TrainingWatch:
    def __init__(self, chance: Chance, options: WatchOptions, checks: bool = True) -> None:
        self.chance = chance
        self.options = options
        self.checks = checks  # False: only the stuck-loss check
        self.stuck = StuckLossDetector(options.stuck_epochs, options.stuck_tolerance)
        self.evaluated: list[tuple[int, float, float]] = []  # (epoch, train loss, val loss)
        self.found: set[str] = set()

    def update(self, row: dict[str, Any]) -> list[Finding]:
        """The findings of this epoch's row whose codes were not found before."""
        new = [finding for finding in self._check(row) if finding.code not in self.found]
        self.found.update(finding.code for finding in new)
        return new

    def _check(self, row: dict[str, Any]) -> list[Finding]:
        epoch = row["epoch"]
        findings = []
        stuck = self.stuck.update(epoch, row["train_loss"])
        if stuck:
            findings.append(Finding("stuck-loss", stuck, self.stuck.HINT, epoch))
        if not self.checks:
            return findings
        findings += self._chance_level(row)
        findings += probe_findings(row, self.options, epoch)
        findings += self._overfitting(row)
        return findings

    @property
    def stuck_found(self) -> bool:
        return self.stuck.warning is not None

    def _chance_level(self, row: dict[str, Any]) -> list[Finding]:
        epoch, chance = row["epoch"], self.chance
        steps = epoch * self.options.steps_per_epoch
        if epoch < self.options.after_epochs or steps < self.options.after_steps:
            return []
        if chance.accuracy is not None:  # a classifier: its accuracy says it (large logits inflate the loss)
            if row["train_accuracy"] > chance.accuracy + CHANCE_MARGIN:
                return []
            accuracy = row["train_accuracy"]
            seen = f"training accuracy {accuracy:.4g} after {epoch} epochs, chance is {chance.accuracy:.4g}"
        elif chance.loss is not None and row[f"train_{chance.metric}"] >= CHANCE_LOSS_SHARE * chance.loss:
            what = "predicting the mean" if chance.metric == "mse" else "a uniform guess"
            seen = (
                f"training {chance.metric} {row[f'train_{chance.metric}']:.4g} after {epoch} epochs, "
                f"{what} scores {chance.loss:.4g}"
            )
        else:
            return []
        return [
            Finding(
                "chance-level",
                f"the model is no better than guessing: {seen}",
                "check the learning rate (try optim=adam, or lr x10 and /10), the initialisation, and that "
                "the inputs match the labels",
                epoch,
            )
        ]

    def _overfitting(self, row: dict[str, Any]) -> list[Finding]:
        val_loss = row.get("val_loss", math.nan)
        if val_loss is None or math.isnan(val_loss):
            return []
        epoch, train_loss = row["epoch"], row["train_loss"]
        self.evaluated.append((epoch, train_loss, val_loss))
        best_epoch, best_train, best_val = min(self.evaluated, key=lambda seen: seen[2])
        # A sustained rise, not one noisy evaluation: every one of the last few is well above the best.
        recent = self.evaluated[-self.options.after_epochs :]
        sustained = len(self.evaluated) > self.options.after_epochs and all(
            seen_epoch > best_epoch and seen_val > (1 + OVERFIT_RISE) * best_val
            for seen_epoch, _, seen_val in recent
        )
        if not (sustained and train_loss < best_train):
            return []
        return [
            Finding(
                "overfitting",
                f"the validation loss rose from {best_val:.4g} (epoch {best_epoch}) to {val_loss:.4g} while "
                f"the training loss fell to {train_loss:.4g}: the model is memorising the training set",
                "regularise (regularization=dropout, l2, early_stopping or augment), use a smaller model, "
                "or train for fewer epochs",
                epoch,
            )
        ]


def probe_findings(row: dict[str, Any], options: WatchOptions, epoch: int | None) -> list[Finding]:
    """Dead ReLUs and vanishing or exploding gradients, from the probe's columns of a row."""
    findings = []
    dead = {key.removeprefix(DEAD_RELU): share for key, share in row.items() if key.startswith(DEAD_RELU)}
    worst = max(dead, key=dead.get, default=None)
    if worst is not None and dead[worst] >= options.dead_relu_share:
        findings.append(
            Finding(
                "dead-relu",
                f"{dead[worst]:.0%} of the units of ReLU {worst} output 0 for every probed example: "
                f"they pass back no gradient and have stopped learning",
                "lower the learning rate, use model.activation=leaky_relu, or model.init=kaiming",
                epoch,
            )
        )
    norms = [norm for key, norm in row.items() if key.startswith(GRAD_NORM)]
    # A first layer with no gradient at all is dead or symmetric (their own findings), not vanishing.
    if len(norms) >= 2 and norms[0] > 0 and norms[-1] > 0 and all(math.isfinite(norm) for norm in norms):
        first, last = norms[0], norms[-1]
        ratio = first / last
        seen = f"the first layer's gradient norm is {first:.3g} against the last layer's {last:.3g}"
        if ratio < 1 / options.gradient_ratio:
            findings.append(
                Finding(
                    "vanishing-gradients",
                    f"{seen}: the early layers barely learn",
                    "use model.activation=relu (not sigmoid) in deep nets, model.init=kaiming or xavier, "
                    "or add BatchNorm (model.batchnorm=true)",
                    epoch,
                )
            )
        elif ratio > options.gradient_ratio:
            findings.append(
                Finding(
                    "exploding-gradients",
                    f"{seen}: the early layers take huge steps",
                    "lower the learning rate, clip gradients (trainer.clip_grad_norm=1), or init=xavier",
                    epoch,
                )
            )
    return findings
