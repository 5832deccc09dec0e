"""Per-split metrics, accumulated on the device so a batch never waits for the host."""

from __future__ import annotations

import math

import torch

from nnexp.data import TaskName
from nnexp.data.tasks import Task, task_of

HIGHER_IS_BETTER = {"accuracy"}


def metric_names(task: TaskName) -> tuple[str, ...]:
    """The metrics of the task a spec names: ("loss", "accuracy") for classification."""
    return task_of(task).metrics


def better(metric: str, new: float, old: float) -> bool:
    """Whether `new` improves on `old` for a column such as val_loss or train_accuracy."""
    if math.isnan(old):
        return not math.isnan(new)
    return new > old if metric.rsplit("_", 1)[-1] in HIGHER_IS_BETTER else new < old


class MetricAccumulator:
    """The batch metrics of a split, combined in `compute()`, the only host sync.

    Per batch it only keeps tensors (the loss, the predicted classes or the outputs): each small tensor
    operation costs tens of microseconds on a CPU, and summing on the fly took 4% of an MLP epoch.
    """

    def __init__(self, task: Task, device: torch.device) -> None:
        self.task = task
        self.device = device
        self.count = 0
        self.sizes: list[int] = []
        self.losses: list[torch.Tensor] = []
        self.predictions: list[torch.Tensor] = []  # classes, or regression outputs
        self.targets: list[torch.Tensor] = []

    def update(self, outputs: torch.Tensor, targets: torch.Tensor, loss: torch.Tensor) -> None:
        size = self.task.count(targets)  # examples, or tokens for a language model, whose targets are (B, T)
        self.count += size
        self.sizes.append(size)
        self.losses.append(loss.detach())
        if self.task.predicts_classes:
            self.predictions.append(outputs.argmax(dim=1))  # integers: no autograd graph is kept
            self.targets.append(targets)
        elif self.task.predicts_numbers:
            self.predictions.append(outputs.detach())
            self.targets.append(targets)

    def compute(self) -> dict[str, float]:
        if self.count == 0:
            return dict.fromkeys(self.task.metrics, math.nan)
        sizes = torch.tensor(self.sizes, dtype=torch.float64, device=self.device)
        means = {"loss": (torch.stack(self.losses).double() @ sizes).item() / self.count}
        if self.task.predicts_classes:
            correct = torch.cat(self.predictions) == torch.cat(self.targets)
            means["accuracy"] = correct.sum().item() / self.count
        elif self.task.predicts_numbers:
            error = (torch.cat(self.predictions) - torch.cat(self.targets)).double()
            per_example = tuple(range(1, error.dim()))
            means["mse"] = error.square().mean(dim=per_example).sum().item() / self.count
            means["mae"] = error.abs().mean(dim=per_example).sum().item() / self.count
        else:  # a language model: perplexity is exp(mean loss per token), not a mean of its own
            means["perplexity"] = math.exp(means["loss"])
        return means
