"""The rules of `model.layers`, model=sequential's layer list: each layer's options, what each may be.

The layer names, their options' defaults and which option a bare value sets are the model's
(models/layer_list.py); what a value may be, and how a mistake is said, are here. Read before anything
is built, without torch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nnexp.errors import ConfigError
from nnexp.models.layer_list import KINDS, POOL_TYPES, REQUIRED, LayerSpec, plain

KEY = "model.layers"


def _whole(least: int) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= least


def _boolean(value: Any) -> bool:
    return isinstance(value, bool)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value


WHOLE, BOOLEAN = (_whole(1), "a whole number >= 1"), (_boolean, "true or false")
# (ok, allowed) for each option of each layer that has options; allowed is what the message asks for.
RULES: dict[str, dict[str, tuple[Callable[[Any], bool], str]]] = {
    "linear": {"out_features": (lambda v: v is None or _whole(1)(v), WHOLE[1]), "bias": BOOLEAN},
    "conv": {
        "channels": WHOLE,
        "kernel_size": WHOLE,
        "stride": WHOLE,
        "padding": (lambda v: _whole(0)(v) or v == "same", "a whole number >= 0 or same"),
        "bias": BOOLEAN,
    },
    "pool": {
        "type": (lambda v: v in POOL_TYPES, "one of " + ", ".join(POOL_TYPES)),
        "kernel_size": WHOLE,
        "stride": (lambda v: v is None or _whole(1)(v), "null (the kernel size) or a whole number >= 1"),
        "padding": (_whole(0), "a whole number >= 0"),
    },
    "batchnorm": {
        "eps": (lambda v: _number(v) and v > 0, "a number > 0"),
        "momentum": (lambda v: _number(v) and 0 <= v <= 1, "a number in [0, 1]"),
    },
    "dropout": {"p": (lambda v: _number(v) and 0 <= v < 1, "a probability in [0, 1)")},
    "leaky_relu": {"negative_slope": (lambda v: _number(v) and v >= 0, "a number >= 0")},
}


def check_layers(layers: Any) -> None:
    """ConfigError naming the first mistake in `layers`, entry by entry, then the bare linear layers."""
    layers = plain(layers)
    if isinstance(layers, tuple):
        layers = list(layers)
    if not isinstance(layers, list) or not layers:
        raise ConfigError(
            f"{KEY}={layers!r} is not a layer list: write a non-empty list, "
            f"e.g. '{KEY}=[flatten,{{linear:64}},relu,linear]'",
            key=KEY,
        )
    specs = [_read_layer(position, plain(entry)) for position, entry in enumerate(layers, start=1)]
    _check_bare_linears(specs)


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
        if not kind.defaults:
            raise ConfigError(f"{where} ({name}) takes no options: write it as the bare name {name}", key=KEY)
        if kind.main is None:
            first = next(iter(kind.defaults))
            raise ConfigError(
                f"{where} ({name}) takes named options ({', '.join(kind.defaults)}): "
                f"write e.g. {{{name}: {{{first}: {kind.defaults[first]}}}}}",
                key=KEY,
            )
        given = {kind.main: given}
    unknown = [option for option in given if option not in kind.defaults]
    if unknown:
        known = ", ".join(kind.defaults) if kind.defaults else "none"
        raise ConfigError(f"{where} ({name}) has no option {unknown[0]!r}: its options are {known}", key=KEY)
    options: dict[str, Any] = {}
    for option, default in kind.defaults.items():
        if option not in given:
            if default is REQUIRED:
                raise ConfigError(
                    f"{where} ({name}) needs {option}: write e.g. {{{name}: {{{option}: 8}}}}", key=KEY
                )
            options[option] = default
            continue
        value = given[option]
        ok, allowed = RULES[name][option]
        if not ok(value):
            raise ConfigError(f"{where} ({name}) has {option}={value!r}: use {allowed}", key=KEY)
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
                f"{KEY} layer {spec.position} (linear) has no size, and only the last linear layer takes its "
                f"size from the data: write e.g. {{linear: 64}}",
                key=KEY,
            )
