"""The training step and the evaluation pass: the part of nnexp a learner should be able to read.

One step for every task: the task object (data/tasks.py) says how to call the model (a language model
takes and hands back a hidden state) and what the loss compares (its (B, T, V) logits, token by token).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch
from torch import nn

from nnexp.data import TensorSplit
from nnexp.data.tasks import Task
from nnexp.data.text import TokenSplit
from nnexp.models.recurrent import detach_state
from nnexp.train.losses import LossFn
from nnexp.train.metrics import MetricAccumulator

Batch = tuple[torch.Tensor, torch.Tensor]


def train_one_epoch(
    model: nn.Module,
    batches: Iterable[Batch],
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer,
    task: Task,
    carry_state: bool = False,
    penalty: Callable[[nn.Module], torch.Tensor] | None = None,
    clip_grad_norm: float | None = None,
    on_batch: Callable[[torch.Tensor], None] | None = None,
    autocast: Callable[[], AbstractContextManager] = nullcontext,
    max_batches: int | None = None,
    accumulate: int = 1,
    scaler: torch.amp.GradScaler | None = None,
) -> dict[str, float]:
    """One pass over `batches`; returns the running means of the batch metrics (a language model's with
    the tokens it trained on, for its speed).

    With `carry_state` (a language model's sequential batches) each batch starts from the last one's final
    state, detached; otherwise every batch starts from none. `autocast` wraps the forward pass and the
    loss: bf16 with `trainer.precision=bf16`, else nothing.

    With `accumulate` K (trainer.accumulate_grad_batches) the optimiser steps every K batches on their
    summed gradients of loss / K, so batch 16 with K=4 steps as batch 64 would; the epoch's leftover
    batches (fewer than K) make one step on their mean gradient. `scaler`: fp16's gradient scaler.
    """
    model.train()
    device = next(model.parameters()).device
    running = MetricAccumulator(task, device)
    state: Any = None
    pending = 0  # batches whose gradients wait for the next optimiser step
    for inputs, targets in batches:
        state = detach_state(state) if carry_state else None  # gradients stop at the batch boundary
        if pending == 0:  # cleared before a step's first batch: the last step's gradients stay readable
            optimizer.zero_grad(set_to_none=True)
        with autocast():
            outputs, state = task.forward(model, inputs, state)
            loss = task.loss(loss_fn, outputs, targets)
        objective = loss if penalty is None else loss + penalty(model)
        if accumulate > 1:  # K batches' gradients then add up to their mean
            objective = objective / accumulate
        (objective if scaler is None else scaler.scale(objective)).backward()
        pending += 1
        if pending == accumulate:
            optimizer_step(model, optimizer, clip_grad_norm, scaler)
            pending = 0
        running.update(outputs, targets, loss)
        if on_batch is not None:
            on_batch(loss)
    if pending:  # the leftover batches: one step on their mean gradient, as a short last batch would be
        optimizer_step(model, optimizer, clip_grad_norm, scaler, rescale=accumulate / pending)
    if task.generates_text:
        return {**running.compute(), "tokens": running.count}  # runs/fit.py: tokens_per_s
    return running.compute()


def optimizer_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    clip_grad_norm: float | None,
    scaler: torch.amp.GradScaler | None = None,
    rescale: float = 1.0,
) -> None:
    """Clip and step. fp16's gradient scaler unscales the gradients first and skips a step whose
    gradients overflowed (the scale then shrinks)."""
    if rescale != 1.0:
        for parameter in model.parameters():
            if parameter.grad is not None:
                parameter.grad.mul_(rescale)
    if scaler is not None and clip_grad_norm is not None:
        scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
    if clip_grad_norm is not None:
        nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm)
    if scaler is None:
        optimizer.step()
    else:
        scaler.step(optimizer)
        scaler.update()


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    split: TensorSplit | TokenSplit,
    loss_fn: LossFn,
    task: Task,
    batch_size: int,
    autocast: Callable[[], AbstractContextManager] = nullcontext,
    max_batches: int | None = None,
) -> dict[str, float]:
    """The metrics over `split`, read in order from its start, carrying the state where training does."""
    model.eval()
    device = next(model.parameters()).device
    totals = MetricAccumulator(task, device)
    state: Any = None
    for inputs, targets in itertools.islice(split.batches(batch_size), max_batches):
        with autocast():
            outputs, state = task.forward(model, inputs, state if split.carries_state else None)
            loss = task.loss(loss_fn, outputs, targets)
        totals.update(outputs, targets, loss)
    return totals.compute()
