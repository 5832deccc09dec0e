"""Linear regression on regression data, softmax regression on classification data."""

from __future__ import annotations

import torch
from torch import nn

from nnexp.models.layers import flat_size


class Linear(nn.Module):
    # The softmax lives in the cross-entropy loss, so the model returns logits.
    def __init__(self, input_shape: tuple[int, ...], num_outputs: int) -> None:
        super().__init__()
        self.flatten = nn.Flatten()
        self.linear = nn.Linear(flat_size(input_shape), num_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.flatten(x))
