"""Every held-out example's prediction and loss (predictions.csv), the confusion matrix and the
per-class precision and recall, computed once after the final evaluation.

The model is run in eval mode on its device, in batches of `trainer.eval_batch_size`, over the same
batches the final evaluation read (`trainer.max_eval_batches` included), so the mean of the losses
here is the run's own test_loss.
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nnexp.data import DataSpec, TensorSplit
from nnexp.data.tasks import task_of
from nnexp.look import units

PREDICTIONS_FILE = "predictions.csv"
CONFUSION_FILE = "confusion_matrix.csv"


@dataclass
class Predictions:
    """One split's examples as the model sees them: numpy arrays with a row per example."""

    split: str  # test or val
    task: str  # classification or regression
    index: np.ndarray  # (N,) the example's position in the split
    targets: np.ndarray  # (N,) class numbers, or (N, K) regression targets
    outputs: np.ndarray  # (N, C) logits, or (N, K) regression outputs
    losses: np.ndarray  # (N,) each example's loss, as the training loss measures it

    @property
    def predicted(self) -> np.ndarray:
        """(N,) the class with the largest output, or (N, K) the regression outputs."""
        return self.outputs.argmax(axis=1) if task_of(self.task).predicts_classes else self.outputs

    @property
    def probabilities(self) -> np.ndarray:
        """(N, C) softmax of the outputs: the probabilities the cross-entropy reads from the logits."""
        shifted = self.outputs - self.outputs.max(axis=1, keepdims=True)
        exp = np.exp(shifted)
        return exp / exp.sum(axis=1, keepdims=True)


def per_example_loss(loss_name: str, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """(B,) the training loss of each example; their mean is the batch loss the run reports."""
    if loss_name == "cross_entropy":
        return F.cross_entropy(outputs, targets, reduction="none")
    if loss_name == "mse_onehot":
        targets = F.one_hot(targets, outputs.shape[1]).to(outputs.dtype)
    loss = F.l1_loss if loss_name == "l1" else F.mse_loss
    return loss(outputs, targets.to(outputs.dtype), reduction="none").flatten(1).mean(dim=1)


@torch.inference_mode()
def predict(
    model: nn.Module,
    split: TensorSplit,
    split_name: str,
    spec: DataSpec,
    loss_name: str,
    batch_size: int,
    max_batches: int | None = None,
    autocast: Callable[[], AbstractContextManager] = nullcontext,
) -> Predictions:
    """The model's outputs and per-example losses on `split`, read in order, in eval mode."""
    was_training = model.training
    model.eval()
    outputs, targets, losses = [], [], []
    try:
        for inputs, batch_targets in itertools.islice(split.batches(batch_size), max_batches):
            with autocast():
                batch_outputs = model(inputs)
            batch_outputs = batch_outputs.float()
            outputs.append(batch_outputs)
            targets.append(batch_targets)
            losses.append(per_example_loss(loss_name, batch_outputs, batch_targets))
    finally:
        model.train(was_training)
    out = torch.cat(outputs).cpu().numpy()
    return Predictions(
        split=split_name,
        task=spec.task,
        index=np.arange(len(out)),
        targets=torch.cat(targets).cpu().numpy(),
        outputs=out.reshape(len(out), -1),
        losses=torch.cat(losses).cpu().double().numpy(),
    )


def class_names(spec: DataSpec) -> list[str]:
    """The data set's class names (details["classes"]), else the class numbers as text."""
    names = spec.details.get("classes")
    if names and len(names) == spec.num_outputs:
        return [str(name) for name in names]
    return [str(number) for number in range(spec.num_outputs)]


def write_predictions(predictions: Predictions, spec: DataSpec, path: Path, append: bool = False) -> None:
    """predictions.csv: a row per example, with the split's name so val and test can share one file.

    Classification: index, target, prediction, loss, prob_predicted, prob_target (and the class names
    where they are not the numbers). Regression: target and prediction per target column, in the units
    the model was trained in, and in the data file's units when the target was z-scored.
    """
    header = ["split", "index"]
    columns: list[np.ndarray] = [np.full(len(predictions.index), predictions.split), predictions.index]
    if task_of(predictions.task).predicts_classes:
        predicted, probabilities = predictions.predicted, predictions.probabilities
        rows = np.arange(len(predicted))
        header += ["target", "prediction", "loss", "prob_predicted", "prob_target"]
        columns += [
            predictions.targets,
            predicted,
            predictions.losses,
            probabilities[rows, predicted],
            probabilities[rows, predictions.targets],
        ]
        names = class_names(spec)
        if names != [str(number) for number in range(spec.num_outputs)]:
            header += ["target_name", "prediction_name"]
            columns += [np.array(names)[predictions.targets], np.array(names)[predicted]]
    else:
        targets = predictions.targets.reshape(len(predictions.index), -1)
        outputs = predictions.outputs
        suffixes = [""] if targets.shape[1] == 1 else [f"_{k}" for k in range(targets.shape[1])]
        for k, suffix in enumerate(suffixes):
            header += [f"target{suffix}", f"prediction{suffix}"]
            columns += [targets[:, k], outputs[:, k]]
        header.append("loss")
        columns.append(predictions.losses)
        scale, names = units.target_scale(spec), units.target_names(spec)
        if scale is not None and len(names) == targets.shape[1]:
            # each target as the CSV has it: z-score undone
            in_units = units.in_file_units(targets, scale), units.in_file_units(outputs, scale)
            for k, name in enumerate(names):
                header += [name, f"predicted_{name}"]
                columns += [in_units[0][:, k], in_units[1][:, k]]
    write_csv(path, header, columns, append=append)


def write_csv(path: Path, header: list[str], columns: list[np.ndarray], append: bool = False) -> None:
    with open(path, "a" if append else "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        if not append:
            writer.writerow(header)
        writer.writerows(zip(*(_cells(column) for column in columns), strict=True))


def _cells(column: np.ndarray) -> list[Any]:
    if column.dtype.kind == "f":
        return [float(f"{value:.7g}") for value in column.tolist()]
    return column.tolist()


def per_class(predictions: Predictions, spec: DataSpec) -> tuple[np.ndarray, dict[str, Any]]:
    """(the confusion matrix of counts, rows true and columns predicted; the per-class metrics).

    A class's recall is its accuracy: the share of its examples predicted right. Counted with NumPy,
    as scikit-learn's confusion_matrix and precision_recall_fscore_support(zero_division=0) count them
    (tests/test_views.py checks that): importing scikit-learn took 2.4 s of an MNIST run that has no
    other use for it.
    """
    classes = spec.num_outputs
    pairs = predictions.targets.astype(np.int64) * classes + predictions.predicted.astype(np.int64)
    matrix = np.bincount(pairs, minlength=classes * classes).reshape(classes, classes)
    correct, support, predicted = np.diag(matrix), matrix.sum(axis=1), matrix.sum(axis=0)
    precision = np.divide(correct, predicted, out=np.zeros(classes), where=predicted > 0)
    recall = np.divide(correct, support, out=np.zeros(classes), where=support > 0)
    both = precision + recall
    f1 = np.divide(2 * precision * recall, both, out=np.zeros(classes), where=both > 0)
    metrics = {
        "split": predictions.split,
        "classes": class_names(spec),
        "precision": [round(float(value), 6) for value in precision],
        "recall": [round(float(value), 6) for value in recall],
        "f1": [round(float(value), 6) for value in f1],
        "support": [int(value) for value in support],
    }
    return matrix, metrics


def write_confusion_matrix(matrix: np.ndarray, names: list[str], path: Path) -> None:
    """confusion_matrix.csv: a row per true class, a column per predicted class, counts in the cells."""
    header = ["true \\ predicted", *names]
    columns = [np.array(names), *(matrix[:, k] for k in range(matrix.shape[1]))]
    write_csv(path, header, columns)
