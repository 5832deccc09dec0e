"""Read `model.layers`, the layer list of model=sequential, without torch: names and options, checked.

A layer is a name (`relu`, `flatten`, a bare `linear`) or a one-key mapping of its options
(`{linear: 64}`, `{conv: {channels: 8, kernel_size: 3, padding: 1}}`); a single value instead of a
mapping sets the layer's main option (`{dropout: 0.5}` is `{dropout: {p: 0.5}}`). The config check
reads the list with this module before anything is built; the model builds from what it returns.
Shapes are checked later, against the data, when the model is built.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from nnexp.errors import ConfigError

KEY = "model.layers"


def _whole(least: int) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= least


def _boolean(value: Any) -> bool:
    return isinstance(value, bool)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value


@dataclass(frozen=True)
class Option:
    ok: Callable[[Any], bool]
    allowed: str  # what the message asks for
    default: Any = None
    required: bool = False


@dataclass(frozen=True)
class Kind:
    """One layer name: its options and which of them a bare value sets."""

    options: dict[str, Option] = field(default_factory=dict)
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
    "linear": Kind(
        {
            "out_features": Option(lambda v: v is None or _whole(1)(v), "a whole number >= 1"),
            "bias": Option(_boolean, "true or false", True),
        },
        main="out_features",
    ),
    "conv": Kind(
        {
            "channels": Option(_whole(1), "a whole number >= 1", required=True),
            "kernel_size": Option(_whole(1), "a whole number >= 1", 3),
            "stride": Option(_whole(1), "a whole number >= 1", 1),
            "padding": Option(lambda v: _whole(0)(v) or v == "same", "a whole number >= 0 or same", 0),
            "bias": Option(_boolean, "true or false", True),
        },
        main="channels",
    ),
    "pool": Kind(
        {
            "type": Option(lambda v: v in POOL_TYPES, "one of " + ", ".join(POOL_TYPES), "max"),
            "kernel_size": Option(_whole(1), "a whole number >= 1", 2),
            "stride": Option(
                lambda v: v is None or _whole(1)(v), "null (the kernel size) or a whole number >= 1"
            ),
            "padding": Option(_whole(0), "a whole number >= 0", 0),
        },
        main="type",
    ),
    "batchnorm": Kind(
        {
            "eps": Option(lambda v: _number(v) and v > 0, "a number > 0", 1e-5),
            "momentum": Option(lambda v: _number(v) and 0 <= v <= 1, "a number in [0, 1]", 0.1),
        }
    ),
    "dropout": Kind({"p": Option(lambda v: _number(v) and 0 <= v < 1, "a probability in [0, 1)", 0.5)}, "p"),
    "flatten": Kind(),
    **{name: Kind() for name in ACTIVATION_NAMES},
    "leaky_relu": Kind(
        {"negative_slope": Option(lambda v: _number(v) and v >= 0, "a number >= 0", 0.01)}, "negative_slope"
    ),
}


@dataclass(frozen=True)
class LayerSpec:
    position: int  # 1-based, as the message names it
    name: str
    options: dict[str, Any]

    @property
    def label(self) -> str:
        return f"{KEY} layer {self.position} ({self.name})"


def read_layers(layers: Any) -> list[LayerSpec]:
    """Each entry of `layers` as a name and its complete options; ConfigError naming the first mistake."""
    layers = _plain(layers)
    if isinstance(layers, tuple):
        layers = list(layers)
    if not isinstance(layers, list) or not layers:
        raise ConfigError(
            f"{KEY}={layers!r} is not a layer list: write a non-empty list, "
            f"e.g. '{KEY}=[flatten,{{linear:64}},relu,linear]'",
            key=KEY,
        )
    specs = [_read_layer(position, _plain(entry)) for position, entry in enumerate(layers, start=1)]
    _check_bare_linears(specs)
    return specs


def _plain(value: Any) -> Any:
    """OmegaConf containers as plain lists and dicts (the check reads the composed config)."""
    if isinstance(value, (DictConfig, ListConfig)):
        return OmegaConf.to_container(value, resolve=True)
    return value


def _read_layer(position: int, entry: Any) -> LayerSpec:
    where = f"{KEY} layer {position}"
    if isinstance(entry, str):
        name, given = entry, {}
    elif isinstance(entry, dict) and len(entry) == 1:
        name, given = next(iter(entry.items()))
    else:
        raise ConfigError(
            f"{where} is {entry!r}: write a layer name (relu) or a mapping with one key, "
            f"the layer's name ({{linear: 64}}, {{conv: {{channels: 8, kernel_size: 3}}}})",
            key=KEY,
        )
    if name not in KINDS:
        raise ConfigError(
            f"{where} is {name!r}, which is not a layer nnexp knows: use one of {', '.join(KINDS)}", key=KEY
        )
    kind = KINDS[name]
    if given is None:
        given = {}
    if not isinstance(given, dict):
        if not kind.options:
            raise ConfigError(f"{where} ({name}) takes no options: write it as the bare name {name}", key=KEY)
        if kind.main is None:
            first = next(iter(kind.options))
            raise ConfigError(
                f"{where} ({name}) takes named options ({', '.join(kind.options)}): "
                f"write e.g. {{{name}: {{{first}: {kind.options[first].default}}}}}",
                key=KEY,
            )
        given = {kind.main: given}
    unknown = [option for option in given if option not in kind.options]
    if unknown:
        known = ", ".join(kind.options) if kind.options else "none"
        raise ConfigError(f"{where} ({name}) has no option {unknown[0]!r}: its options are {known}", key=KEY)
    options: dict[str, Any] = {}
    for option, rule in kind.options.items():
        if option not in given:
            if rule.required:
                raise ConfigError(
                    f"{where} ({name}) needs {option}: write e.g. {{{name}: {{{option}: 8}}}}", key=KEY
                )
            options[option] = rule.default
            continue
        value = given[option]
        if not rule.ok(value):
            raise ConfigError(f"{where} ({name}) has {option}={value!r}: use {rule.allowed}", key=KEY)
        options[option] = value
    if name == "pool" and options["type"] == "global_avg" and len(given) > 1:
        raise ConfigError(
            f"{where} (pool) averages the whole image and takes no other options: write {{pool: global_avg}}",
            key=KEY,
        )
    return LayerSpec(position, name, options)


def _check_bare_linears(specs: list[LayerSpec]) -> None:
    """Only the last linear layer may leave its size to the data: an earlier bare one is a forgotten size."""
    linears = [spec for spec in specs if spec.name == "linear"]
    for spec in linears[:-1]:
        if spec.options["out_features"] is None:
            raise ConfigError(
                f"{spec.label} has no size, and only the last linear layer takes its size from the data: "
                f"write e.g. {{linear: 64}}",
                key=KEY,
            )
