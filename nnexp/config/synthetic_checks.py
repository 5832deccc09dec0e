"""Checks on `data=synthetic` (nnexp/data/synthetic.py): its keys, and the settings that cannot go with
fresh samples. Like checks.py, imports nothing heavy.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from nnexp.errors import ConfigError

SYNTHETIC_TARGET = "nnexp.data.synthetic.load_synthetic"
TASKS = ("regression", "classification")
TARGET_RULES = ("linear", "constant", "random")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _shape(value: Any) -> bool:
    """[features] or [channels, height, width]."""
    return (
        isinstance(value, (list, ListConfig))
        and len(value) in (1, 3)
        and all(_whole(size) and size >= 1 for size in value)
    )


# (key, ok, what is allowed, an example value): checks.py turns each into one of its rules. The keys
# data.val_size and data.test_size are shared with other data (checks.py); `check_synthetic` narrows them.
SYNTHETIC_RULES: list[tuple[str, Callable[[Any], bool], str, Any]] = [
    ("data.task", lambda v: v in TASKS, "regression or classification", "classification"),
    ("data.shape", _shape, "[features] or [channels,height,width], whole numbers >= 1", "[3,32,32]"),
    ("data.low", _number, "a finite number", 0.0),
    ("data.high", _number, "a finite number", 1.0),
    ("data.target_rule", lambda v: v in TARGET_RULES, "one of " + ", ".join(TARGET_RULES), "constant"),
    ("data.target_value", _number, "a finite number", 2.0),
    ("data.num_outputs", lambda v: _whole(v) and v >= 1, "a whole number >= 1", 10),
    ("data.fresh", lambda v: isinstance(v, bool), "true or false", "false"),
    ("data.train_size", lambda v: _whole(v) and v >= 1, "a whole number >= 1", 1000),
    ("data.seed", lambda v: _whole(v) and 0 <= v < 2**32, "a whole number from 0 to 4294967295", 0),
]


def check_synthetic(cfg: DictConfig) -> None:
    """Combinations the single-key rules cannot see; quiet unless the data is data=synthetic."""
    data = cfg.get("data")
    if not isinstance(data, DictConfig) or data.get("_target_") != SYNTHETIC_TARGET:
        return
    for key in ("val_size", "test_size"):
        value = data.get(key)
        if not (_whole(value) and value >= 0):
            raise ConfigError(
                f"data.{key}={value} is not allowed with data=synthetic: use a whole number of samples "
                f">= 0 (0: none), e.g. data.{key}=200",
                key=f"data.{key}",
            )
    if not data.low < data.high:
        raise ConfigError(
            f"data.low={data.low} is not below data.high={data.high}: the inputs are drawn from "
            f"[low, high), so set e.g. data.low=0 data.high=1",
            key="data.low",
        )
    if data.task == "classification" and data.target_rule == "constant":
        raise ConfigError(
            "data.target_rule=constant gives a regression target: use data.task=regression, or "
            "data.target_rule=linear (or random) for classes",
            key="data.target_rule",
        )
    if data.task == "classification" and data.num_outputs < 2:
        raise ConfigError(
            f"data.num_outputs={data.num_outputs} is not allowed for classification: use 2 or more "
            f"classes (e.g. data.num_outputs=10)",
            key="data.num_outputs",
        )
    if not data.fresh:
        return
    if OmegaConf.select(cfg, "trainer.shuffle", default=True) is False:
        raise ConfigError(
            "trainer.shuffle=false keeps a fixed training set's order, and data.fresh=true draws new "
            "samples every step: set data.fresh=false for a fixed set, or drop trainer.shuffle=false",
            key="trainer.shuffle",
        )
    if "augment" in (cfg.get("regularization") or {}):
        raise ConfigError(
            "regularization=augment transforms a fixed training set, and data.fresh=true draws new "
            "samples every step: set data.fresh=false, or drop regularization=augment",
            key="regularization",
        )
