"""Building blocks shared by the models."""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial
from typing import Any

from torch import nn


class DoesNotFit(ValueError):
    """A model that cannot be built with these options on this data, in the model's own terms: what went
    wrong (`problem`), at which layer or block, the shape of one example arriving there. The config's
    rules say it to the user, naming the keys to change (config/model_fit.py)."""

    def __init__(
        self, problem: str, layer: Any = None, shape: tuple[int, ...] = (), detail: str = "", outputs: int = 0
    ) -> None:
        super().__init__(f"{problem} at {layer} with {shape}" + (f": {detail}" if detail else ""))
        self.problem = problem  # needs_vector, needs_images, normalises, cannot_build, cannot_take, ...
        self.layer = layer  # a LayerSpec, a block's number, or the model's name
        self.shape = shape
        self.detail = detail  # torch's own words, where torch refused
        self.outputs = outputs  # the outputs the data needs (ends_wrong)


ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "leaky_relu": nn.LeakyReLU,
    "prelu": nn.PReLU,
    "identity": nn.Identity,  # no activation: Linear -> Linear stacks, a conv block without one
}


# After the last layer too: sigmoid outputs for MSE against one-hot targets; a softmax there in front of
# cross-entropy is one of the classic mistakes the learner diagnostics name.
OUTPUT_ACTIVATIONS: dict[str, type[nn.Module]] = {
    **ACTIVATIONS,
    "softmax": partial(nn.Softmax, dim=-1),
    "log_softmax": partial(nn.LogSoftmax, dim=-1),
}


def activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose from {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


def output_activation(name: str) -> nn.Module:
    if name not in OUTPUT_ACTIVATIONS:
        raise ValueError(f"unknown output activation {name!r}; choose from {', '.join(OUTPUT_ACTIVATIONS)}")
    return OUTPUT_ACTIVATIONS[name]()


def per_layer(value: str | Sequence[str], key: str, count: int, layers: str) -> list[str]:
    """One name for every layer, or a list with one per layer; `layers` names them ("2 hidden layers")."""
    if isinstance(value, str):
        return [value] * count
    if len(value) != count:  # the config check refuses it first (config/model_checks.py)
        raise ValueError(f"{key}: {len(value)} names for {layers}")
    return list(value)


def counted(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def flat_size(input_shape: tuple[int, ...]) -> int:
    return math.prod(input_shape)
