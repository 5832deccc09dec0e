"""Read `model.layers`, the layer list of model=sequential, without torch: each layer's name and options.

A layer is a name (`relu`, `flatten`, a bare `linear`) or a one-key mapping of its options
(`{linear: 64}`, `{conv: {channels: 8, kernel_size: 3, padding: 1}}`); a single value instead of a
mapping sets the layer's main option (`{dropout: 0.5}` is `{dropout: {p: 0.5}}`). The config check
(config/layer_list.py) holds each option's rule and reads the list before anything is built; the model
builds from what `read_layers` returns. Shapes are found later, against the data, when it is built.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

REQUIRED = object()  # an option the layer cannot do without (a conv's channels)


@dataclass(frozen=True)
class Kind:
    """One layer name: its options with their defaults, and which of them a bare value sets."""

    defaults: dict[str, Any] = field(default_factory=dict)
    main: str | None = None


POOL_TYPES = ("max", "avg", "global_avg")
ACTIVATION_NAMES = (
    "relu",
    "sigmoid",
    "tanh",
    "leaky_relu",
    "prelu",
    "identity",
    "softmax",
    "log_softmax",
)

KINDS: dict[str, Kind] = {
    # out_features null: the data's size (the classes, or the regression targets); the last linear only.
    "linear": Kind({"out_features": None, "bias": True}, main="out_features"),
    "conv": Kind(
        {"channels": REQUIRED, "kernel_size": 3, "stride": 1, "padding": 0, "bias": True}, main="channels"
    ),
    "pool": Kind({"type": "max", "kernel_size": 2, "stride": None, "padding": 0}, main="type"),
    "batchnorm": Kind({"eps": 1e-5, "momentum": 0.1}),
    "dropout": Kind({"p": 0.5}, "p"),
    "flatten": Kind(),
    **{name: Kind() for name in ACTIVATION_NAMES},
    "leaky_relu": Kind({"negative_slope": 0.01}, "negative_slope"),
}


@dataclass(frozen=True)
class LayerSpec:
    position: int  # 1-based, as a message names it
    name: str
    options: dict[str, Any]


def read_layers(layers: Any) -> list[LayerSpec]:
    """Each entry of `layers`, a list the config check has read (config/layer_list.py), as a name and its
    complete options."""
    specs = []
    for position, entry in enumerate(plain(layers), start=1):
        entry = plain(entry)
        name, given = (entry, {}) if isinstance(entry, str) else next(iter(entry.items()))
        kind = KINDS[name]
        if given is None:
            given = {}
        if not isinstance(given, dict):
            given = {kind.main: given}
        specs.append(LayerSpec(position, name, {**kind.defaults, **given}))
    return specs


def plain(value: Any) -> Any:
    """OmegaConf containers as plain lists and dicts (the check reads the composed config)."""
    if isinstance(value, (DictConfig, ListConfig)):
        return OmegaConf.to_container(value, resolve=True)
    return value
