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
from torch import nn

from nnexp.data import DataBundle
from nnexp.data.tasks import task_of
from nnexp.diagnostics import Finding
from nnexp.diagnostics.probe import DEAD_RELU, GRAD_NORM
from nnexp.train.safeguards import StuckLossDetector

CHANCE_MARGIN = 0.02  # accuracy within this of chance counts as chance
CHANCE_LOSS_SHARE = 0.95  # a loss still at 95% of the chance-level loss counts as chance
UNSTABLE_FACTOR = 2.0  # a loss above twice both chance and its own lowest has blown up
# A loss that stopped moving within 2% of the way from guessing down to the best fit the model can reach
# has converged there: not stuck. (Seed 003's shuffled fish run settles 0.6% of the way above least squares;
# its unshuffled twin, whose plateau the lecture shows, 5.5%.)
CONVERGED_SHARE = 0.02
# The least-squares fit is solved before training only where it costs well under a second.
OPTIMUM_MAX_VALUES = 5_000_000
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
    loss: float | None = None  # ln C (cross-entropy) or ln V; the target variance (the `mse` metric)
    metric: str = "loss"

    @classmethod
    def of(cls, data: DataBundle, loss_name: str) -> Chance:
        task, outputs = task_of(data.spec.task), data.spec.num_outputs
        if task.predicts_classes:
            counts = torch.bincount(data.train.targets.cpu(), minlength=outputs)
            majority = (counts.max() / counts.sum()).item()
            loss = math.log(outputs) if loss_name == "cross_entropy" else None
            return cls(accuracy=max(1 / outputs, majority), loss=loss)
        if task.predicts_numbers:
            # Guessing each target column's mean scores the mean of the columns' variances.
            targets = data.train.targets.double()
            return cls(loss=targets.var(dim=0, correction=0).mean().item(), metric="mse")
        return cls(loss=math.log(outputs))


class TrainingWatch:
    def __init__(self, chance: Chance, options: WatchOptions, checks: bool = True) -> None:
        self.chance = chance
        self.options = options
        self.checks = checks  # False: only the stuck-loss check
        self.stuck = StuckLossDetector(options.stuck_epochs, options.stuck_tolerance)
        self.evaluated: list[tuple[int, float, float]] = []  # (epoch, train loss, val loss)
        self.found: set[str] = set()
        self.previous: dict[str, Any] | None = None  # the last probed epoch's row
        self.lowest: float = math.inf  # the lowest training loss (or MSE) of the epochs before
        self.resolved: dict[str, int] = {}  # code -> the epoch it stopped holding
        self.newly_resolved: list[tuple[str, int]] = []  # since the last `pop_resolved`
        # The lowest training loss the model can reach, where it is known (an affine model under MSE: the
        # least-squares fit); a loss that stops there has converged, not stuck.
        self.optimum: float | None = None
        self.converged: tuple[int, float] | None = None  # (epoch, loss) where it settled at the optimum

    def update(self, row: dict[str, Any]) -> list[Finding]:
        """The findings of this epoch's row whose codes were not found before."""
        new = [finding for finding in self._check(row) if finding.code not in self.found]
        self.found.update(finding.code for finding in new)
        return new

    def pop_resolved(self) -> list[tuple[str, int]]:
        """(code, epoch) of the findings that stopped holding since the last call."""
        resolved, self.newly_resolved = self.newly_resolved, []
        return resolved

    def _check(self, row: dict[str, Any]) -> list[Finding]:
        epoch = row["epoch"]
        findings = []
        stuck = self.stuck.update(epoch, row["train_loss"])
        if stuck and self._at_optimum(row["train_loss"]):
            self.converged = (epoch, row["train_loss"])
        elif stuck:
            if self.optimum is not None:
                stuck += f", above the least-squares optimum {self.optimum:.4g} the model can reach"
            findings.append(Finding("stuck-loss", stuck, self.stuck.HINT, epoch))
        if not self.checks:
            return findings
        at_chance = self._chance_level(row)
        findings += at_chance
        # A model at chance after a few epochs that then learns was slow, not broken: say when it recovered.
        if not at_chance and "chance-level" in self.found and "chance-level" not in self.resolved:
            self.resolved["chance-level"] = row["epoch"]
            self.newly_resolved.append(("chance-level", row["epoch"]))
        findings += self._unstable(row)
        if any(key.startswith((GRAD_NORM, DEAD_RELU)) for key in row):  # a probed epoch
            findings += probe_findings(row, self.options, epoch, previous=self.previous or {})
            self.previous = row  # the last probed epoch: a dead layer must be dead in two probes running
        findings += self._overfitting(row)
        return findings

    @property
    def stuck_found(self) -> bool:
        return self.stuck.warning is not None

    def _at_optimum(self, loss: float) -> bool:
        if self.optimum is None or self.chance.loss is None:
            return False
        return loss <= self.optimum + CONVERGED_SHARE * max(self.chance.loss - self.optimum, 0.0)

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
        elif chance.loss is not None and (
            CHANCE_LOSS_SHARE * chance.loss <= row[f"train_{chance.metric}"] <= UNSTABLE_FACTOR * chance.loss
        ):
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

    def _unstable(self, row: dict[str, Any]) -> list[Finding]:
        """A training loss that climbed far above both its lowest and what guessing scores."""
        chance = self.chance
        # A constant target: guessing its mean scores 0, so every loss is "far above" it; no yardstick.
        if chance.loss is None or chance.loss <= 0:
            return []
        value, lowest = row[f"train_{chance.metric}"], self.lowest
        self.lowest = min(lowest, value)
        if not (value > UNSTABLE_FACTOR * chance.loss and value > UNSTABLE_FACTOR * lowest):
            return []
        return [
            Finding(
                "unstable-loss",
                f"the training {chance.metric} climbed to {value:.4g} from {lowest:.4g}, far above the "
                f"{chance.loss:.4g} guessing scores: the steps overshoot (exploding gradients)",
                "lower the learning rate, or clip gradients (trainer.clip_grad_norm=1)",
                row["epoch"],
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


def reachable_optimum(data: DataBundle, model: nn.Module, loss_name: str) -> float | None:
    """The least-squares training MSE where it is the lowest loss `model` can reach: an affine model (linear
    layers, nothing between them but identity, flatten or dropout) fitted under MSE. None elsewhere."""
    if not task_of(data.spec.task).predicts_numbers or loss_name != "mse" or not _is_affine(model):
        return None
    inputs = data.train.inputs
    if inputs.numel() + len(inputs) > OPTIMUM_MAX_VALUES:
        return None
    from nnexp.diagnostics.baselines import least_squares

    return least_squares(data)["train_mse"]


def _is_affine(model: nn.Module) -> bool:
    layers = [module for module in model.modules() if not list(module.children())]
    kinds = (nn.Linear, nn.Identity, nn.Flatten, nn.Dropout)
    has_linear = any(isinstance(layer, nn.Linear) for layer in layers)
    return has_linear and all(isinstance(layer, kinds) for layer in layers)


def probe_findings(
    row: dict[str, Any], options: WatchOptions, epoch: int | None, previous: dict[str, Any] | None = None
) -> list[Finding]:
    """Dead ReLUs and vanishing or exploding gradients, from the probe's columns of a row.

    During training a layer counts as dead when it was in the `previous` row too: after the first few
    steps, units that ignore the input (e.g. on noise images) sit on or off together for an epoch.
    """
    findings = []
    dead = _dead_layers(row, options)
    if previous is not None:
        dead = {name: share for name, share in dead.items() if name in _dead_layers(previous, options)}
    worst = max(dead, key=dead.get, default=None)
    if worst is not None:
        findings.append(
            Finding(
                "dead-relu",
                f"{dead[worst]:.0%} of the units of ReLU {worst} output 0 for every probed example: "
                f"they pass back no gradient and have stopped learning",
                "lower the learning rate, use model.activation=leaky_relu, or model.init=kaiming",
                epoch,
            )
        )
    findings += _gradient_findings(
        [norm for key, norm in row.items() if key.startswith(GRAD_NORM)], options, epoch
    )
    return findings


def _dead_layers(row: dict[str, Any], options: WatchOptions) -> dict[str, float]:
    shares = {key.removeprefix(DEAD_RELU): share for key, share in row.items() if key.startswith(DEAD_RELU)}
    return {name: share for name, share in shares.items() if share >= options.dead_relu_share}


def _gradient_findings(norms: list[float], options: WatchOptions, epoch: int | None) -> list[Finding]:
    findings = []
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
