"""Per-split metrics, accumulated on the device so a batch never waits for the host."""

from __future__ import annotations

import math

import torch

from nnexp.data import Task

METRICS_OF_TASK = {
    "classification": ("loss", "accuracy"),
    "regression": ("loss", "mse", "mae"),
    "language_model": ("loss", "perplexity"),  # per token
}
HIGHER_IS_BETTER = {"accuracy"}


def metric_names(task: Task) -> tuple[str, ...]:
    return METRICS_OF_TASK[task]


def better(metric: str, new: float, old: float) -> bool:
    """Whether `new` improves on `old` for a column such as val_loss or train_accuracy."""
    if math.isnan(old):
        return not math.isnan(new)
    return new > old if metric.rsplit("_", 1)[-1] in HIGHER_IS_BETTER else new < old


class MetricAccumulator:
    """Sums of the batch metrics, weighted by batch size; `compute()` is the only host sync."""

    def __init__(self, task: Task, device: torch.device) -> None:
        self.task = task
        self.count = 0
        # Perplexity is exp(mean loss), not a mean of its own, so it is derived in compute().
        summed = [name for name in metric_names(task) if name != "perplexity"]
        self.sums = {name: torch.zeros((), device=device) for name in summed}

    def update(self, outputs: torch.Tensor, targets: torch.Tensor, loss: torch.Tensor) -> None:
        # Examples, or tokens for a language model, whose targets are (B, T).
        size = targets.numel() if self.task == "language_model" else len(targets)
        self.count += size
        self.sums["loss"] += loss.detach() * size
        outputs = outputs.detach()
        if self.task == "classification":
            self.sums["accuracy"] += (outputs.argmax(dim=1) == targets).sum()
        elif self.task == "regression":
            error = outputs - targets
            self.sums["mse"] += error.square().mean(dim=tuple(range(1, error.dim()))).sum()
            self.sums["mae"] += error.abs().mean(dim=tuple(range(1, error.dim()))).sum()

    def compute(self) -> dict[str, float]:
        if self.count == 0:
            return dict.fromkeys(metric_names(self.task), math.nan)
        means = {name: total.item() / self.count for name, total in self.sums.items()}
        if self.task == "language_model":
            means["perplexity"] = math.exp(means["loss"])
        return means
