"""The rules that need the data itself: its task, its input shape, how many tokens a split holds.

check_config reads only the config; these are the checks it cannot make, because the data decides them
(a CSV's columns, an image set's shape). train/ calls them as it builds, with the data's spec in hand,
so the wording stays here beside the other rules and the builders are handed what already fits.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf

from nnexp.errors import ConfigError, Finding

if TYPE_CHECKING:  # config stays light to import: the spec is handed in by train/, which has torch
    from nnexp.data import DataSpec

TASKS_OF_LOSS = {
    "cross_entropy": ("classification", "language_model"),
    "mse_onehot": ("classification",),
    "mse": ("regression",),
    "l1": ("regression",),
}
HINTS = {
    ("mse", "classification"): "use loss=mse_onehot for MSE against one-hot targets",
    ("l1", "classification"): "use loss=cross_entropy or loss=mse_onehot",
    ("cross_entropy", "regression"): "use loss=mse or loss=l1",
    ("mse_onehot", "regression"): "use loss=mse",
}
# The classic mismatches, reported with their learner-diagnostics code and why they fail.
MISTAKES = {
    ("mse", "classification"): (
        "mse-on-class-indices",
        "MSE would compare the outputs with class numbers, as if class 9 were nine times class 1",
    ),
    ("cross_entropy", "regression"): (
        "cross-entropy-on-regression",
        "cross-entropy needs class labels, and the target is a continuous number",
    ),
}
MIRROR_SENSITIVE = ("digits", "mnist")  # a mirrored 2 or 7 is not a digit any more


def check_against_data(cfg: DictConfig, spec: DataSpec, metrics: Sequence[str]) -> None:
    """What the data decides: the loss fits its task, augment has images to transform, and each monitor
    names one of the task's `metrics` (train/metrics.py's names, handed in)."""
    check_loss(cfg.loss.name, spec)
    regularization = cfg.get("regularization") or {}
    if "augment" in regularization:
        check_augment(regularization["augment"], spec)
    for key in ("scheduler.monitor", "regularization.early_stopping.monitor"):
        monitor = OmegaConf.select(cfg, key)
        if monitor is not None:
            check_monitor(key, monitor, spec.task, metrics)


def check_loss(name: str, spec: DataSpec) -> None:
    """A loss that does not fit the data's task is refused (`auto` always fits)."""
    if name == "auto" or spec.task in TASKS_OF_LOSS[name]:
        return
    hint = HINTS.get((name, spec.task), "use loss=auto")
    message = f"loss={name} does not fit {spec.name}, a {spec.task} data set"
    if (name, spec.task) in MISTAKES:
        code, why = MISTAKES[name, spec.task]
        raise Finding(code, f"{message}: {why}", hint).refuse(ConfigError)
    raise ConfigError(f"{message}: {hint}")


def check_augment(options: dict[str, Any], spec: DataSpec) -> None:
    """regularization=augment transforms images, and never mirrors the images a mirror changes."""
    if len(spec.input_shape) != 3:
        raise ConfigError(
            f"regularization=augment transforms images, and data={spec.name} has inputs of shape "
            f"{tuple(spec.input_shape)}: drop augment or choose an image data set"
        )
    if options["horizontal_flip"] > 0 and spec.name in MIRROR_SENSITIVE:
        raise ConfigError(
            f"regularization.augment.horizontal_flip={options['horizontal_flip']} mirrors {spec.name}, "
            f"and a mirrored digit is not the same digit: set it to 0 (it suits e.g. fashion_mnist)"
        )


def check_monitor(key: str, monitor: str, task: str, metrics: Sequence[str]) -> None:
    """A monitored column names one of the task's `metrics` (val_accuracy, val_loss, ...)."""
    if monitor.partition("_")[2] not in metrics:
        choices = ", ".join(f"val_{name}" for name in metrics)
        raise ConfigError(f"{key}={monitor} is not a metric of {task}: use one of {choices}")


def check_token_batches(batch_size: int, num_steps: int, tokens: int, batches: int) -> None:
    """A token split gives at least one batch of `batch_size` sequences of `num_steps` tokens."""
    if batches == 0:
        raise ConfigError(
            f"trainer.batch_size={batch_size} x data.num_steps={num_steps} needs more than "
            f"{batch_size * num_steps:,} tokens, and a split has {tokens:,}: "
            f"use a smaller batch, fewer steps or more text"
        )
