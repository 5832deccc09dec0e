"""A small residual network: a conv stem, stages of residual blocks, global average pooling, a linear head.

Each block computes y = act(F(x) + skip(x)) with F = conv-BN-act-conv-BN. The skip is the identity,
or a 1x1 convolution with BatchNorm where the block changes the channels or the stride, so the two
paths have the same shape. Every stage after the first halves height and width.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from nnexp.models.cnn import image_shape
from nnexp.models.layers import activation as make_activation


class ResidualBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int, activation: str) -> None:
        super().__init__()
        self.residual = nn.Sequential(  # F(x)
            nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False),
            nn.BatchNorm2d(out_channels),
            make_activation(activation),
            nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False),
            nn.BatchNorm2d(out_channels),
        )
        reshapes = stride != 1 or in_channels != out_channels
        self.skip = (
            nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels)
            )
            if reshapes
            else nn.Identity()
        )
        self.activation = make_activation(activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.residual(x) + self.skip(x))


class ResNet(nn.Module):
    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_outputs: int,
        widths: Sequence[int] = (16, 32, 64),  # channels of each stage
        blocks_per_stage: int = 2,
        activation: str = "relu",
        dropout: float = 0.0,  # before the linear head
    ) -> None:
        super().__init__()
        in_channels = image_shape(input_shape, "model=resnet")[0]
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False),
            nn.BatchNorm2d(widths[0]),
            make_activation(activation),
        )
        blocks: list[nn.Module] = []
        channels = widths[0]
        for stage, width in enumerate(widths):
            for index in range(blocks_per_stage):
                stride = 2 if stage > 0 and index == 0 else 1
                blocks.append(ResidualBlock(channels, width, stride, activation))
                channels = width
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(channels, num_outputs),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))  # (B, C, H, W) -> (B, num_outputs)
