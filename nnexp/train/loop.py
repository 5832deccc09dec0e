"""The training step and the evaluation pass: the part of nnexp a learner should be able to read."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext

import torch
from torch import nn

from nnexp.data import Task, TensorSplit
from nnexp.train.losses import LossFn
from nnexp.train.metrics import MetricAccumulator

Batch = tuple[torch.Tensor, torch.Tensor]


def train_one_epoch(
    model: nn.Module,
    batches: Iterable[Batch],
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer,
    task: Task,
    penalty: Callable[[nn.Module], torch.Tensor] | None = None,
    clip_grad_norm: float | None = None,
    on_batch: Callable[[torch.Tensor], None] | None = None,
    autocast: Callable[[], AbstractContextManager] = nullcontext,
    max_batches: int | None = None,
) -> dict[str, float]:
    """One pass over `batches`; returns the running means of the batch metrics.

    `autocast` wraps the forward pass and the loss: bf16 with `trainer.precision=bf16`, else nothing.
    """
    model.train()
    device = next(model.parameters()).device
    running = MetricAccumulator(task, device)
    for inputs, targets in batches:
        optimizer.zero_grad(set_to_none=True)
        with autocast():
            outputs = model(inputs)
            loss = loss_fn(outputs, targets)
        objective = loss if penalty is None else loss + penalty(model)
        objective.backward()
        if clip_grad_norm is not None:
            nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm)
        optimizer.step()
        running.update(outputs, targets, loss)
        if on_batch is not None:
            on_batch(loss)
    return running.compute()


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    split: TensorSplit,
    loss_fn: LossFn,
    task: Task,
    batch_size: int,
    autocast: Callable[[], AbstractContextManager] = nullcontext,
    max_batches: int | None = None,
) -> dict[str, float]:
    model.eval()
    device = next(model.parameters()).device
    totals = MetricAccumulator(task, device)
    for inputs, targets in itertools.islice(split.batches(batch_size), max_batches):
        with autocast():
            outputs = model(inputs)
            loss = loss_fn(outputs, targets)
        totals.update(outputs, targets, loss)
    return totals.compute()
