"""Checks of what a run writes besides its metrics: the `outputs` section and trainer.log_every_n_steps.

Called by `check_config` (cli/checks.py), so a mistake here is refused the same way, before any run
folder exists: one line with the key, the value and the fix.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

from nnexp.errors import ConfigError

PREDICTION_SPLITS = ("test", "val", "both")  # outputs.predictions


def check_outputs(cfg: DictConfig) -> None:
    predictions = OmegaConf.select(cfg, "outputs.predictions", default="test")
    if predictions not in PREDICTION_SPLITS:
        _refuse("outputs.predictions", predictions, "test, val or both", "val")
    views = OmegaConf.select(cfg, "outputs.views", default=True)
    if not isinstance(views, bool):
        _refuse("outputs.views", views, "true or false", "false")
    every = OmegaConf.select(cfg, "trainer.log_every_n_steps", default=None)
    if every is not None and not (isinstance(every, int) and not isinstance(every, bool) and every >= 1):
        _refuse("trainer.log_every_n_steps", every, "null (off) or a whole number >= 1", 10)
    has_val = (
        OmegaConf.select(cfg, "data.val_fraction", default=0) > 0
        or OmegaConf.select(cfg, "data.val_size", default=0) > 0
    )
    if predictions in ("val", "both") and not has_val:
        raise ConfigError(
            f"outputs.predictions={predictions} needs a validation split, and this data has none: "
            f"set data.val_fraction=0.1 (or data.val_size) or outputs.predictions=test",
            key="outputs.predictions",
        )


def _refuse(key: str, value: Any, allowed: str, example: Any) -> None:
    raise ConfigError(f"{key}={value} is not allowed: use {allowed} (e.g. {key}={example})", key=key)
