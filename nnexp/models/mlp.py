"""The multilayer perceptron: Linear -> activation -> dropout per hidden layer, then a linear head."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from nnexp.models.layers import activation as make_activation
from nnexp.models.layers import flat_size
from nnexp.models.layers import output_activation as make_output_activation


class MLP(nn.Module):
    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_outputs: int,
        hidden: Sequence[int] = (128,),
        activation: str = "relu",
        dropout: float = 0.0,
        output_activation: str | None = None,  # e.g. sigmoid outputs for MSE against one-hot targets
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = flat_size(input_shape)
        for size in hidden:
            layers += [nn.Linear(width, size), make_activation(activation)]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = size
        layers.append(nn.Linear(width, num_outputs))
        if output_activation is not None:
            layers.append(make_output_activation(output_activation))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)
