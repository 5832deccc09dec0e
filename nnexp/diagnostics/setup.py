"""Checks before the first step: the output layer against the loss, the initial weights, the input scale,
and the initial loss against what an untrained model should score."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from nnexp.data import DataBundle
from nnexp.data.tasks import task_of
from nnexp.diagnostics import Finding
from nnexp.diagnostics.probe import ProbeResult
from nnexp.diagnostics.training import Chance

WEIGHTED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
INPUT_RMS_LIMIT = 3.0  # pixels in [0, 1] and z-scores sit near 1; raw 0-16 or 0-255 values far above
COLUMN_SPREAD_LIMIT = 100.0  # one input column's spread this many times another's: unnormalised
INITIAL_LOSS_FACTOR = 2.0  # a starting loss this many times the expected one means outputs start too large


def check_setup(model: nn.Module, loss_name: str, data: DataBundle, initial: ProbeResult) -> list[Finding]:
    findings = [
        *_output_layer(initial.last_module, loss_name),
        *_symmetric_weights(model, initial),
    ]
    if not task_of(data.spec.task).generates_text:  # token ids have no scale to check
        findings += _input_scale(initial.inputs)
    return findings


def expected_initial_loss(loss_name: str, chance: Chance, data: DataBundle) -> dict[str, Any] | None:
    """What an untrained model should score, which is what guessing scores: ln C for cross-entropy,
    the target's variance for MSE."""
    if chance.loss is None or loss_name not in ("cross_entropy", "mse"):
        return None
    if loss_name == "mse":
        return {"expected": chance.loss, "why": "the variance of the training target: predicting its mean"}
    count = data.spec.num_outputs
    what = task_of(data.spec.task).output_unit  # classes, or tokens for a language model
    return {"expected": chance.loss, "why": f"ln {count}: a uniform guess over {count} {what}"}


def check_initial_loss(measured: float, expected: dict[str, Any] | None, data: DataBundle) -> list[Finding]:
    if expected is None or not math.isfinite(measured):
        return []
    if measured <= INITIAL_LOSS_FACTOR * expected["expected"]:
        return []
    if expected["expected"] == 0:  # a constant target: guessing scores 0, so any start is "far above" it
        return []
    hint = "start from smaller weights (model.init=default, or a smaller model.init_std)"
    if task_of(data.spec.task).predicts_numbers and not data.spec.details.get("synthetic"):
        # Suggest normalising only a target that can be: data.normalize_target refuses a constant column
        # (and data=synthetic has no such key).
        targets = data.train.targets.double()
        spread = targets.std(dim=0, correction=0)
        if ((targets.mean(dim=0).abs() > spread) & (spread > 0)).any():
            hint = "centre and scale the target (data.normalize_target=true)"
    return [
        Finding(
            "initial-loss",
            f"the untrained model's loss is {measured:.4g}, expected about {expected['expected']:.4g} "
            f"({expected['why']}): the outputs start far too large or off-centre",
            hint,
        )
    ]


def _output_layer(last: nn.Module | None, loss_name: str) -> list[Finding]:
    if loss_name != "cross_entropy" or last is None:
        return []
    name = type(last).__name__
    fix = (  # model=sequential has no output_activation: its last layer is the list's last entry
        "remove it (model.output_activation=null, or the last entry of model.layers): "
        "cross_entropy takes raw logits"
    )
    if isinstance(last, nn.Softmax):
        why = "cross_entropy applies softmax again to outputs in [0, 1], so the loss can hardly fall"
        return [Finding("softmax-before-cross-entropy", f"the model's last layer is {name}: {why}", fix)]
    if isinstance(last, nn.LogSoftmax):
        why = "cross_entropy applies log-softmax itself, so this one does nothing (use it only with nll_loss)"
        return [Finding("softmax-before-cross-entropy", f"the model's last layer is {name}: {why}", fix)]
    if isinstance(last, (nn.Sigmoid, nn.ReLU)):
        why = {
            "Sigmoid": "the logits are squeezed into (0, 1), so softmax over them stays nearly uniform",
            "ReLU": "negative logits are clipped to 0, so no class can be ruled out",
        }[name]
        return [Finding("clipped-logits", f"the model's last layer is {name}: {why}", fix)]
    return []


def _symmetric_weights(model: nn.Module, initial: ProbeResult) -> list[Finding]:
    """Hidden layers whose units all start with the same weights compute and learn the same thing."""
    modules = dict(model.named_modules())
    # In the order the forward pass ran them; the output layer's units may start equal, because the
    # targets tell them apart from the first step.
    hidden = [name for name in initial.grad_norms if isinstance(modules[name], WEIGHTED)][:-1]
    symmetric = [
        name for name in hidden if modules[name].weight.shape[0] > 1 and _rows_equal(modules[name].weight)
    ]
    if not symmetric:
        return []
    return [
        Finding(
            "symmetric-init",
            f"every unit of layer {', '.join(symmetric)} starts with the same weights, so they all compute "
            f"the same value and receive the same gradient: the layer acts as one unit",
            "use random weights (model.init=default, xavier or kaiming; model.init_std above 0)",
        )
    ]


def _rows_equal(weight: torch.Tensor) -> bool:
    rows = weight.detach().reshape(weight.shape[0], -1)
    return bool((rows == rows[0]).all())


def _input_scale(inputs: torch.Tensor) -> list[Finding]:
    values = inputs.detach().float().reshape(len(inputs), -1)
    rms = values.square().mean().sqrt().item()
    seen = f"values from {values.min().item():.4g} to {values.max().item():.4g}"
    hint = (
        "normalise the inputs (digits: data.scale=true; CSV columns: data.normalize_features=true; "
        "data=synthetic: e.g. data.low=0 data.high=1)"
    )
    if rms > INPUT_RMS_LIMIT:
        return [
            Finding(
                "input-scale",
                f"the inputs have a root-mean-square of {rms:.3g} ({seen}), far from unit scale: the first "
                f"layer starts saturated or with huge gradients",
                hint,
            )
        ]
    if inputs.dim() != 2:  # images: rarely inked border pixels spread little, and that is fine
        return []
    spreads = values.std(dim=0, correction=0)
    spreads = spreads[spreads > 0]
    factor = (spreads.max() / spreads.min()).item() if len(spreads) > 1 else 1.0
    if factor > COLUMN_SPREAD_LIMIT:
        return [
            Finding(
                "input-scale",
                f"the input columns' spreads differ by a factor of {factor:.3g}: one learning rate cannot "
                f"suit every weight",
                hint,
            )
        ]
    return []
