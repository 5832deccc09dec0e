"""A regression's numbers back in the data file's units, for the pictures.

A CSV's columns are z-scored before training (data/tabular.py records each column's mean and standard
deviation in the spec's details: `feature_scale`, `target_scale`). A lecturer's fit is read in grams, not
in standard deviations: a fish predicted at -254 g is a lesson, at -1.09 it is a number.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nnexp.data import DataSpec


def target_names(spec: DataSpec) -> list[str]:
    """The target columns as the data names them (a CSV's header), else "target"."""
    named = spec.details.get("target") or "target"
    return [str(name) for name in named] if isinstance(named, list) else [str(named)]


def target_scale(spec: DataSpec) -> tuple[np.ndarray, np.ndarray] | None:
    """(mean, std), one per target column, that undo the targets' z-score; None when they were not."""
    scale = spec.details.get("target_scale")
    if not scale:
        return None
    names = target_names(spec)
    moments = [scale] if "mean" in scale else [scale.get(name) for name in names]  # one, or {name: ...}
    if any(not isinstance(moment, dict) for moment in moments):
        return None
    return _pair(moments)


def feature_scale(spec: DataSpec) -> tuple[np.ndarray, np.ndarray] | None:
    """(mean, std), one per feature column, that undo the features' z-score; None when they were not."""
    scale = spec.details.get("feature_scale")
    if not scale:
        return None
    return np.asarray(scale["mean"], dtype=np.float64), np.asarray(scale["std"], dtype=np.float64)


def in_file_units(values: Any, scale: tuple[np.ndarray, np.ndarray] | None) -> np.ndarray:
    """`values` (N,) or (N, K) as the model sees them, in the file's units (unchanged without a scale)."""
    values = np.asarray(values, dtype=np.float64)
    if scale is None:
        return values
    mean, std = scale
    columns = values.reshape(len(values), -1)
    return (columns * std + mean).reshape(values.shape)


def _pair(moments: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    mean = np.array([float(moment["mean"]) for moment in moments])
    std = np.array([float(moment["std"]) for moment in moments])
    return mean, std
