"""Checks of what a run writes and how often: the `outputs` section, trainer.log_every_n_steps and
trainer.log_every_n_epochs (with how it fits trainer.eval_every).

Called by `check_config` (config/checks.py), so a mistake here is refused the same way, before any run
folder exists: one line with the key, the value and the fix.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

from nnexp.config.data_checks import has_val_split
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
    has_val = has_val_split(cfg)  # data.folds makes one fold the validation split
    _check_epoch_cadence(cfg, has_val)
    if predictions in ("val", "both") and not has_val:
        raise ConfigError(
            f"outputs.predictions={predictions} needs a validation split, and this data has none: "
            f"set data.val_fraction=0.1 (or data.val_size) or outputs.predictions=test",
            key="outputs.predictions",
        )


def _check_epoch_cadence(cfg: DictConfig, has_val: bool) -> None:
    """trainer.log_every_n_epochs, and whether the evaluations trainer.eval_every asks for get written.

    When one divides the other, either every evaluation lands on a written row (eval_every=10 with N=5)
    or every written row has one (eval_every=1, the default, with N=100). Otherwise evaluations are made
    at epochs whose rows are not written while written rows go without one: no one's intent.
    """
    every = OmegaConf.select(cfg, "trainer.log_every_n_epochs", default=1)
    if not (isinstance(every, int) and not isinstance(every, bool) and every >= 1):
        _refuse("trainer.log_every_n_epochs", every, "a whole number >= 1 (1: every epoch)", 10)
    evaluate = OmegaConf.select(cfg, "trainer.eval_every", default=1)
    if not (has_val and isinstance(evaluate, int) and evaluate >= 1):
        return  # nothing is evaluated, or eval_every is bad and checks.py names it
    if evaluate % every and every % evaluate:
        fitting = every * max(1, round(evaluate / every))  # the multiple of N nearest to eval_every
        raise ConfigError(
            f"trainer.eval_every={evaluate} does not fit trainer.log_every_n_epochs={every}: epoch "
            f"{evaluate}'s evaluation would not be written to metrics.csv, nor epoch {every}'s row have one; "
            f"make one a multiple of the other (e.g. trainer.eval_every={fitting} "
            f"or trainer.log_every_n_epochs={evaluate})",
            key="trainer.log_every_n_epochs",
        )


def _refuse(key: str, value: Any, allowed: str, example: Any) -> None:
    raise ConfigError(f"{key}={value} is not allowed: use {allowed} (e.g. {key}={example})", key=key)
