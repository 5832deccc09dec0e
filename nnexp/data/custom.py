"""data=custom: the splits a user's loader returns, made a DataBundle like every other data set's.

The loader returns a dict (or an object with attributes) with `train` and optionally `val` and `test`,
each an (inputs, targets) pair of tensors (or arrays) or a `torch.utils.data.Dataset` of (x, y) pairs.
A missing test split is taken off the training rows (`data.test_size`, 0: none), then a missing validation
split (`data.val_fraction`, 0: none), shuffled with `data.split_seed`, as a CSV's are (tabular.py). The task
follows from the targets (whole numbers: classification into max + 1 classes; fractions: regression)
unless `data.task` names it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from nnexp.data import DataBundle, DataSpec, TensorSplit, shuffled_split
from nnexp.data.folds import hold_out
from nnexp.data.tasks import Task, task_of
from nnexp.errors import DataError, UserError, first_line

SPLITS = ("train", "val", "test")
TASKS = ("classification", "regression")
MAX_CLASSES = 100_000  # more class numbers than this (or than examples) is a label that is not a class


def bundle_from_splits(
    splits: Any,
    loader: str,
    task: str | None = None,
    val_fraction: float = 0.1,
    test_size: float | int = 0.2,
    split_seed: int = 42,
    folds: int | None = None,
    fold: int | None = None,
) -> DataBundle:
    parts = {name: _split(splits, name, loader) for name in SPLITS}
    if parts["train"] is None:
        raise DataError(
            f"data._target_={loader} returned no train split: return {{'train': (inputs, targets), ...}} "
            f"(val and test are optional)"
        )
    x, y = parts["train"]
    rows = np.arange(len(y))
    if parts["test"] is None and test_size != 0:
        rows, test_rows = shuffled_split(len(rows), test_size, split_seed)
        parts["test"] = (x[test_rows], y[test_rows])
    if folds is not None and parts["val"] is not None:  # the loader's validation rows are shared out too
        (x, y), parts["val"] = _pooled((x[rows], y[rows]), parts["val"], loader), None
        rows = np.arange(len(y))
    fold_details: dict[str, Any] = {}
    if parts["val"] is None:  # data.folds: fold `fold` of the train+val rows validates (data/folds.py)
        said_classes = task is None or (task in TASKS and task_of(task).predicts_classes)  # None: inferred
        classes = said_classes and _whole_dtype(y) and y.numel() == len(y)
        labels = y.reshape(-1)[rows].cpu().numpy() if classes else None
        rows, val_rows, fold_details = hold_out(
            rows, val_fraction, split_seed, folds=folds, fold=fold, labels=labels
        )
        parts["val"] = None if val_rows is None else (x[val_rows], y[val_rows])
    parts["train"] = (x[rows], y[rows])
    present = {name: part for name, part in parts.items() if part is not None}

    shapes = {name: tuple(inputs.shape[1:]) for name, (inputs, _) in present.items()}
    if len(set(shapes.values())) > 1:
        raise DataError(
            f"data._target_={loader}: the splits' inputs differ in shape ({shapes}); give all one shape"
        )
    targets = [part[1] for part in present.values()]
    inferred = "classification" if all(_whole_dtype(t) for t in targets) else "regression"
    given, task = task is not None, task or inferred
    if task not in TASKS:
        raise DataError(
            f"data.task={task} is not a task data=custom trains: use classification or regression"
        )
    if task_of(task).predicts_classes:
        present = {
            name: (inputs, _classes(name, labels, loader)) for name, (inputs, labels) in present.items()
        }
        num_outputs = _num_classes(present, loader)
    else:
        present = {name: (inputs, _values(labels)) for name, (inputs, labels) in present.items()}
        num_outputs = int(present["train"][1].shape[1])

    details = {
        "loader": loader,
        "task": f"{task}, given by data.task" if given else _why(task_of(task)),
        **fold_details,
    }
    bundle = DataBundle(
        spec=DataSpec(
            name=loader, task=task, input_shape=shapes["train"], num_outputs=num_outputs, details=details
        ),
        **{name: _tensor_split(present.get(name)) for name in SPLITS},
    )
    bundle.spec.sizes.update({name: len(part) for name, part in bundle.splits().items()})
    return bundle


def _pooled(
    train: tuple[torch.Tensor, torch.Tensor], val: tuple[torch.Tensor, torch.Tensor], loader: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """The train and val rows as one (inputs, targets) pair, for the folds to share out."""
    if train[0].shape[1:] != val[0].shape[1:] or train[1].shape[1:] != val[1].shape[1:]:
        raise DataError(
            f"data._target_={loader}: the train and val splits differ in shape ({tuple(train[0].shape[1:])} "
            f"and {tuple(val[0].shape[1:])}), so data.folds cannot pool them; give both one shape"
        )
    return torch.cat([train[0], val[0]]), torch.cat([train[1], val[1]])


def _num_classes(present: dict[str, tuple[torch.Tensor, torch.Tensor]], loader: str) -> int:
    """max label + 1, refused when the labels cannot be 0..K-1 classes or the train split holds one only."""
    largest, where = max((int(labels.max()), name) for name, (_, labels) in present.items() if len(labels))
    examples = sum(len(labels) for _, labels in present.values())
    if largest + 1 > min(MAX_CLASSES, examples):
        raise DataError(
            f"data._target_={loader}: the largest class label is {largest:,} (in the {where} split), which "
            f"makes {largest + 1:,} classes for {examples:,} examples; number the classes 0..K-1, or give "
            f"data.task=regression"
        )
    kinds = torch.unique(present["train"][1])
    if len(kinds) < 2:
        raise DataError(
            f"data._target_={loader}: every train target is class {int(kinds[0])}, so there is nothing to "
            f"learn; give examples of at least two classes, or data.task=regression"
        )
    return largest + 1


def _why(task: Task) -> str:
    if task.predicts_classes:
        return "classification: the targets are whole numbers"
    return "regression: the targets are fractional numbers"


def _split(splits: Any, name: str, loader: str) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(inputs, targets) of one split as tensors, or None when the loader gave none."""
    part = splits.get(name) if isinstance(splits, Mapping) else getattr(splits, name, None)
    if part is None:
        return None
    if isinstance(part, torch.utils.data.Dataset) or (
        hasattr(part, "__getitem__") and hasattr(part, "__len__") and not isinstance(part, (tuple, list))
    ):
        pairs, index = [], None
        try:
            for index in range(len(part)):
                pairs.append(part[index])
        except UserError:
            raise
        except Exception as error:  # the user's Dataset failed: its own line, not a traceback
            item = "its length" if index is None else f"item {index}"
            raise DataError(
                f"data._target_={loader}: the {name} split's {item} raised {type(error).__name__}: "
                f"{first_line(error)}; fix its Dataset"
            ) from None
        try:
            part = (
                torch.stack([torch.as_tensor(x) for x, _ in pairs]),
                torch.stack([torch.as_tensor(y) for _, y in pairs]),
            )
        except (TypeError, ValueError, RuntimeError) as error:
            raise DataError(
                f"data._target_={loader}: the {name} split's items are not (x, y) pairs of a shape ({error})"
            ) from None
    if not isinstance(part, (tuple, list)) or len(part) != 2:
        raise DataError(
            f"data._target_={loader}: the {name} split is a {type(part).__name__}; give an (inputs, targets) "
            f"pair of tensors or a torch Dataset of (x, y) pairs"
        )
    try:
        inputs, targets = (
            torch.as_tensor(np.asarray(v) if not isinstance(v, torch.Tensor) else v) for v in part
        )
    except (TypeError, ValueError) as error:
        raise DataError(f"data._target_={loader}: the {name} split is not numbers ({error})") from None
    if inputs.ndim < 2 or len(inputs) != len(targets) or len(inputs) == 0:
        raise DataError(
            f"data._target_={loader}: the {name} split has inputs of shape {tuple(inputs.shape)} and "
            f"{len(targets)} targets; give one row of inputs (N, ...) per target, at least one"
        )
    inputs = inputs.float() if not inputs.is_floating_point() or inputs.dtype == torch.float64 else inputs
    for what, values in (("inputs", inputs), ("targets", targets)):
        _check_finite(values, f"data._target_={loader}: the {name} split's {what}")
    return inputs.contiguous(), targets


def _check_finite(values: torch.Tensor, where: str) -> None:
    """NaN or inf in a split would make every loss after it nan: refused at the first one, by position."""
    if not (values.is_floating_point() or values.is_complex()):
        return
    bad = ~torch.isfinite(values)
    if bad.any():
        position = [int(i) for i in bad.nonzero()[0]]
        value = values[tuple(position)].item()
        raise DataError(
            f"{where} hold {str(value)!r} at {position}, not a finite number; drop or fill those examples "
            f"(torch.nan_to_num, or leave them out)"
        )


def _whole_dtype(targets: torch.Tensor) -> bool:
    return not targets.is_floating_point() and not targets.is_complex()


def _classes(name: str, labels: torch.Tensor, loader: str) -> torch.Tensor:
    labels = labels.reshape(-1) if labels.ndim == 2 and labels.shape[1] == 1 else labels
    if labels.ndim != 1 or (labels.is_floating_point() and not torch.equal(labels, labels.round())):
        raise DataError(
            f"data._target_={loader}: the {name} targets are not one class number per example; give whole "
            f"numbers 0..K-1, or data.task=regression"
        )
    if len(labels) and labels.min() < 0:
        raise DataError(
            f"data._target_={loader}: the {name} targets hold a negative class; number classes from 0"
        )
    return labels.long()


def _values(targets: torch.Tensor) -> torch.Tensor:
    targets = targets.float()
    return targets.reshape(-1, 1) if targets.ndim == 1 else targets.reshape(len(targets), -1)


def _tensor_split(part: tuple[torch.Tensor, torch.Tensor] | None) -> TensorSplit | None:
    return None if part is None else TensorSplit(*part)


__all__ = ["bundle_from_splits"]
