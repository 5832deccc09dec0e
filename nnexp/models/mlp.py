"""The multilayer perceptron: Linear -> activation -> dropout per hidden layer, then a linear head.

`activation` is one name for every hidden layer or a list with one per hidden layer (seed 000's
sigmoid-then-ReLU net); `output_activation` is none, one name, or a list applied in order ([relu, softmax]).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from nnexp.models.layers import activation as make_activation
from nnexp.models.layers import counted, flat_size, per_layer
from nnexp.models.layers import output_activation as make_output_activation


class MLP(nn.Module):
    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_outputs: int,
        hidden: Sequence[int] = (128,),
        activation: str | Sequence[str] = "relu",
        dropout: float = 0.0,
        output_activation: str | Sequence[str] | None = None,  # e.g. sigmoid, for MSE on one-hot
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = flat_size(input_shape)
        layers_named = f"{counted(len(hidden), 'hidden layer')} (model.hidden)"
        activations = per_layer(activation, "model.activation", len(hidden), layers_named)
        for size, name in zip(hidden, activations, strict=True):
            layers += [nn.Linear(width, size), make_activation(name)]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = size
        layers.append(nn.Linear(width, num_outputs))
        if output_activation is not None:
            names = [output_activation] if isinstance(output_activation, str) else output_activation
            layers += [make_output_activation(name) for name in names]
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)
