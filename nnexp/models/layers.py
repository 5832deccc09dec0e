"""Building blocks shared by the models."""

from __future__ import annotations

import math
from functools import partial

from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "leaky_relu": nn.LeakyReLU,
    "prelu": nn.PReLU,
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


def flat_size(input_shape: tuple[int, ...]) -> int:
    return math.prod(input_shape)
