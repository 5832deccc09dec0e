"""k-fold cross-validation: `data.folds=K data.fold=k` validates on fold k of the train+val rows.

    nnexp -m data.folds=5 data.fold=0,1,2,3,4      # five runs, each validated on another fifth
    nnexp-report outputs/multirun/...               # their mean ± std over the folds

Every data set whose validation rows nnexp carves (digits, csv and fish, mnist and fashion_mnist,
synthetic with fresh=false, custom) asks `hold_out` for them: without `folds` it is `carve_validation`
(data.val_fraction or data.val_size); with it, the rows that would be train and validation together are
cut into K folds, the same for every k (shuffled with the data's split seed), and fold k is the
validation split. The test split is made before, from the same rows as without folds: it never changes.
Classes keep their proportions in every fold (scikit-learn's StratifiedKFold) when every class has at
least K examples; otherwise, and for regression, the folds are plain shuffled parts (KFold).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from nnexp.data import carve_validation
from nnexp.errors import DataError


class HeldOut(NamedTuple):
    train: Any  # row indices that train
    val: Any | None  # row indices that validate; None: no validation split
    details: dict[str, Any]  # what summary.json says about the folds ({} without them)


def hold_out(
    rows: Any,
    val_fraction: float | int,
    seed: int,
    key: str = "data.val_fraction",
    folds: int | None = None,
    fold: int | None = None,
    labels: Any = None,
) -> HeldOut:
    """(train, val, details) from `rows`: fold `fold` of `folds` when folds is set, else a carved fraction.

    `labels` (one class per row of `rows`, a classifier's) lets the folds keep the classes' proportions.
    """
    if folds is None:
        return HeldOut(*carve_validation(rows, val_fraction, seed, key), {})
    rows = np.asarray(rows)
    if folds > len(rows):
        raise DataError(
            f"data.folds={folds} is more than the {len(rows)} train and validation rows to share out: "
            f"use data.folds={min(5, len(rows))} (at most {len(rows)})"
        )
    stratified = labels is not None and _every_class_has(np.asarray(labels), folds)
    train_part, val_part = fold_indices(len(rows), folds, fold, seed, labels if stratified else None)
    details = {
        "folds": folds,
        "fold": fold,
        "fold_split": (
            f"fold {fold} of {folds} validates ({len(val_part)} rows), the other {folds - 1} train; "
            + ("stratified by class" if stratified else "shuffled")
            + f" with seed {seed}; the test split is the same for every fold"
        ),
    }
    return HeldOut(rows[train_part], rows[val_part], details)


def fold_indices(
    count: int, folds: int, fold: int, seed: int, labels: Any = None
) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) positions in 0..count-1: fold `fold` of `folds`, stratified when given labels."""
    # Here, not at the top: scikit-learn takes a second to import, and only k-fold runs need it.
    from sklearn.model_selection import KFold, StratifiedKFold

    if labels is None:
        splitter = KFold(n_splits=folds, shuffle=True, random_state=seed)
        parts = splitter.split(np.zeros(count))
    else:
        splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
        parts = splitter.split(np.zeros(count), np.asarray(labels))
    for number, (train, val) in enumerate(parts):
        if number == fold:
            return train, val
    raise ValueError(f"fold {fold} is not one of the {folds} folds")  # the config checks refuse it first


def _every_class_has(labels: np.ndarray, folds: int) -> bool:
    """Whether StratifiedKFold fits: each class can put at least one example in every fold."""
    if labels.ndim != 1 or len(labels) == 0:
        return False
    _, counts = np.unique(labels, return_counts=True)
    return bool(counts.min() >= folds)


__all__ = ["HeldOut", "fold_indices", "hold_out"]
