"""Checks on the data switches of a CSV run and the baselines' settings, and on which splits the data
will have.

A CSV with `data.test_size=0` trains on every row and has no test split; `data.val_fraction=0`
(or an image set's `data.val_size=0`) leaves no validation split. A sweeper's objective that names
such a split could never be read, so the run is refused before its folder exists. (Monitors read
metrics.csv, which has train_ and val_ columns only; checks.py and train/build.py judge those.)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from nnexp.errors import ConfigError


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _fraction(value: Any) -> bool:
    return isinstance(value, float) and math.isfinite(value) and 0 < value < 1


def _names(value: Any) -> bool:
    """A non-empty list of column names."""
    return isinstance(value, (list, ListConfig)) and len(value) > 0 and all(isinstance(f, str) for f in value)


# (key, ok, what is allowed, an example value): checks.py turns each into one of its rules.
DATA_SWITCH_RULES: list[tuple[str, Callable[[Any], bool], str, Any]] = [
    (
        "data.test_size",
        lambda v: (_whole(v) and v >= 0) or _fraction(v),
        "a fraction in (0, 1), a whole number of rows >= 1, or 0 for no test split",
        0.2,
    ),
    (
        "data.features",
        lambda v: v == "all" or _names(v),
        "a non-empty list of column names, or `all` (every numeric column but the targets)",
        "[Height,Width]",
    ),
    (
        "data.target",
        lambda v: (isinstance(v, str) and v != "") or _names(v),
        "a column name, or a list of them",
        "Weight",
    ),
    ("data.scale_on", lambda v: v in ("train", "all"), "train or all (z-scores fitted on every row)", "all"),
    ("data.folds", lambda v: v is None or (_whole(v) and v >= 2), "null, or a whole number of folds >= 2", 5),
    ("data.fold", lambda v: v is None or (_whole(v) and v >= 0), "null, or a fold number 0..K-1", 0),
    ("data.std_ddof", lambda v: _whole(v) and v in (0, 1), "0 or 1", 1),
    ("baselines.logistic.penalty", lambda v: v in ("l2", None), "l2, or null for no penalty", "null"),
    (
        "baselines.logistic.C",
        lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0,
        "a finite number > 0",
        1.0,
    ),
    ("baselines.logistic.max_iter", lambda v: _whole(v) and v >= 1, "a whole number >= 1", 300),
]


def has_test_split(cfg: DictConfig) -> bool:
    return OmegaConf.select(cfg, "data.test_size", default=None) != 0


def has_val_split(cfg: DictConfig) -> bool:
    return (
        OmegaConf.select(cfg, "data.val_fraction", default=0) > 0
        or OmegaConf.select(cfg, "data.val_size", default=0) > 0
        or OmegaConf.select(cfg, "data.folds", default=None) is not None
    )


def check_named_splits(cfg: DictConfig) -> None:
    """Refuse an objective that reads a split this data will not have."""
    check_folds(cfg)  # with data.folds, one of the folds is the validation split
    key, column = "objective", cfg.get("objective")
    if not isinstance(column, str):
        return
    if column.startswith("test_") and not has_test_split(cfg):
        raise ConfigError(
            f"{key}={column} names the test split, and data.test_size=0 leaves none: "
            f"set data.test_size=0.2, or name a train_ column (e.g. {key}=train_{column[5:]})"
        )
    if column.startswith("val_") and not has_val_split(cfg):
        raise ConfigError(
            f"{key}={column} needs a validation split, and data.val_fraction is 0: "
            f"set data.val_fraction=0.1 or {key}=train_{column[4:]}"
        )


def check_folds(cfg: DictConfig) -> None:
    """`data.folds=K data.fold=k` (data/folds.py): both or neither, k in 0..K-1, fixed rows to share out.
    (K larger than the rows is found when the data is read.)"""
    folds = OmegaConf.select(cfg, "data.folds", default=None)
    fold = OmegaConf.select(cfg, "data.fold", default=None)
    if folds is None and fold is not None:
        raise ConfigError(
            f"data.fold={fold} needs data.folds, the number of folds: add e.g. data.folds=5", key="data.fold"
        )
    if folds is None:
        return
    # every fold's number, for a sweep: Hydra's range() where a list would run on
    every = ",".join(str(number) for number in range(folds)) if folds <= 10 else f"'range(0,{folds})'"
    if fold is None:
        raise ConfigError(
            f"data.folds={folds} needs data.fold, the fold that validates (0..{folds - 1}): add data.fold=0, "
            f"or run every fold with nnexp -m data.folds={folds} data.fold={every}",
            key="data.folds",
        )
    if fold >= folds:
        raise ConfigError(
            f"data.fold={fold} is not one of the {folds} folds of data.folds={folds}: use 0..{folds - 1} "
            f"(every fold: -m data.fold={every})",
            key="data.fold",
        )
    if OmegaConf.select(cfg, "data.fresh", default=False) is True:
        raise ConfigError(
            f"data.folds={folds}: data.fresh=true draws new training samples every step, so there are no "
            f"fixed rows to share out in folds; add data.fresh=false",
            key="data.folds",
        )
