"""The model group's choices and the checks of its lists: per-layer names, the sequential layer list.

Kept beside checks.py so that the model's rules read in one place; like it, imports nothing heavy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from nnexp.config.layer_list import check_layers
from nnexp.errors import ConfigError

ACTIVATIONS = ("relu", "sigmoid", "tanh", "leaky_relu", "prelu", "identity")
OUTPUT_ACTIVATIONS = (*ACTIVATIONS, "softmax", "log_softmax")
INITS = ("default", "normal", "xavier", "xavier_normal", "kaiming", "kaiming_normal")  # as models/init.py
INIT_BIAS = ("keep", "zero", "normal")
POOLS = ("max", "avg", "global_avg", "none")


def name_or_names(choices: tuple[str, ...], null: bool = False) -> Callable[[Any], bool]:
    """One of `choices` (or None when `null`), or a list of them: one per layer or block."""

    def ok(value: Any) -> bool:
        if isinstance(value, (list, ListConfig)):
            return all(isinstance(name, str) and name in choices for name in value)
        return (null and value is None) or value in choices

    return ok


# (ok, allowed) for checks.py's rules
ACTIVATION = (name_or_names(ACTIVATIONS), "one of " + ", ".join(ACTIVATIONS) + ", or a list, one per layer")
OUTPUT_ACTIVATION = (
    name_or_names(OUTPUT_ACTIVATIONS, null=True),
    "null or one of " + ", ".join(OUTPUT_ACTIVATIONS) + ", or a list of them applied in order",
)
INIT_BIAS_RULE = (
    lambda v: v is None or v in INIT_BIAS,
    "null (the scheme's own rule) or one of " + ", ".join(INIT_BIAS),
)
POOL = (name_or_names(POOLS), "one of " + ", ".join(POOLS) + ", or one per block")


def check_model_lists(cfg: DictConfig) -> None:
    """model=sequential's layer list, layer by layer; one activation for a model without hidden layers."""
    model = cfg.get("model")
    if not isinstance(model, DictConfig):
        return
    if "layers" in model:
        check_layers(model.layers)
        if "dropout" in (cfg.get("regularization") or {}):
            raise ConfigError(
                "regularization=dropout does not reach model=sequential's layers: write dropout into "
                "model.layers where you want it, e.g. {dropout: 0.5} after an activation",
                key="regularization",
            )
    activation = OmegaConf.select(cfg, "model.activation", default=None)
    if isinstance(activation, ListConfig) and "hidden" not in model:
        name = "model=" + str(model.get("_target_", "this model")).rsplit(".", 1)[-1].lower()
        raise ConfigError(
            f"model.activation=[{','.join(activation)}]: {name} takes one activation for all its layers: "
            f"give one name, e.g. model.activation={activation[0] if activation else 'relu'}",
            key="model.activation",
        )
    _check_one_per_layer(model)


def _counted(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _check_one_per_layer(model: DictConfig) -> None:
    """A list of activations has one per layer (a CNN's conv blocks, then its hidden layers), a list of a
    CNN's block settings one per conv block."""
    hidden = model.get("hidden")
    channels = model.get("channels") if isinstance(hidden, ListConfig) else None  # model=cnn, lenet
    activation = model.get("activation")
    if isinstance(hidden, ListConfig) and isinstance(activation, ListConfig):
        layers = f"{_counted(len(hidden), 'hidden layer')} (model.hidden)"
        count = len(hidden)
        if isinstance(channels, ListConfig):
            layers = f"{_counted(len(channels), 'conv block')} (model.channels) then {layers}"
            count += len(channels)
        if len(activation) != count:
            raise ConfigError(
                f"model.activation=[{','.join(activation)}] has {_counted(len(activation), 'name')} "
                f"for {layers}: give one name for all, or one per layer",
                key="model.activation",
            )
    if not isinstance(channels, ListConfig):
        return
    for key in ("kernel_size", "stride", "padding", "pool", "pool_size"):
        value = model.get(key)
        if isinstance(value, ListConfig) and len(value) != len(channels):
            raise ConfigError(
                f"model.{key}={list(value)} has {len(value)} values for {len(channels)} conv blocks: "
                f"give one value for all, or one per entry of model.channels",
                key=f"model.{key}",
            )
