"""A configurable convolutional network: conv blocks, then a linear head; sizes follow the data.

Each block is Conv2d -> [BatchNorm2d] -> activation -> [pooling] -> [dropout]. `kernel_size`, `stride`,
`padding`, `pool` and `pool_size` are one value for every block or a list with one per block (LeNet-5
pads only its first); `activation` is one name or a list with one per block, then one per hidden layer.
`pool=global_avg` averages each channel to one value (seed 003's AvgPool over the whole image);
`none` leaves a block without pooling, `activation=identity` without an activation.
The input channels come from the data (1 for grey images, 3 for colour).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from nnexp.models.layers import DoesNotFit, counted, per_layer
from nnexp.models.layers import activation as make_activation

POOLS: dict[str, type[nn.Module]] = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}  # and global_avg, none


class CNN(nn.Module):
    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_outputs: int,
        channels: Sequence[int] = (8,),
        kernel_size: int | Sequence[int] = 3,
        stride: int | Sequence[int] = 1,
        padding: int | Sequence[int] = 1,
        pool: str | Sequence[str] = "max",  # max | avg | global_avg | none
        pool_size: int | Sequence[int] = 2,
        batchnorm: bool = False,
        activation: str | Sequence[str] = "relu",  # one per block, then one per hidden layer
        dropout: float = 0.0,
        hidden: Sequence[int] = (),  # linear layers between the conv blocks and the output
    ) -> None:
        super().__init__()
        in_channels, height, width = image_shape(input_shape, "model=cnn")
        kernels = per_block(kernel_size, "kernel_size", len(channels))
        strides = per_block(stride, "stride", len(channels))
        paddings = per_block(padding, "padding", len(channels))
        pools = per_block(pool, "pool", len(channels))
        pool_sizes = per_block(pool_size, "pool_size", len(channels))
        activations = per_layer(
            activation,
            "model.activation",
            len(channels) + len(hidden),
            f"{counted(len(channels), 'conv block')} (model.channels) "
            f"then {counted(len(hidden), 'hidden layer')} (model.hidden)",
        )

        blocks: list[nn.Module] = []
        for index, out_channels in enumerate(channels):
            kernel, step, pad = kernels[index], strides[index], paddings[index]
            layers: list[nn.Module] = [
                nn.Conv2d(in_channels, out_channels, kernel, step, pad, bias=not batchnorm)
            ]
            if batchnorm:
                layers.append(nn.BatchNorm2d(out_channels))
            layers.append(make_activation(activations[index]))
            height, width = (conv_size(size, kernel, step, pad) for size in (height, width))
            if pools[index] == "global_avg":
                layers.append(nn.AdaptiveAvgPool2d(1))  # (C, H, W) -> (C, 1, 1)
                height, width = min(height, 1), min(width, 1)  # an empty image stays empty
            elif pools[index] != "none":
                layers.append(POOLS[pools[index]](pool_sizes[index]))
                height, width = height // pool_sizes[index], width // pool_sizes[index]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            if height < 1 or width < 1:
                raise DoesNotFit("block_shrinks", index + 1, tuple(input_shape), str(list(channels)))
            blocks.append(nn.Sequential(*layers))
            in_channels = out_channels
        self.features = nn.Sequential(*blocks)

        head: list[nn.Module] = [nn.Flatten()]
        features = in_channels * height * width
        for size, name in zip(hidden, activations[len(channels) :], strict=True):
            head += [nn.Linear(features, size), make_activation(name)]
            if dropout > 0:
                head.append(nn.Dropout(dropout))
            features = size
        head.append(nn.Linear(features, num_outputs))
        self.head = nn.Sequential(*head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))  # (B, C, H, W) -> (B, num_outputs)


def image_shape(input_shape: tuple[int, ...], model: str) -> tuple[int, int, int]:
    if len(input_shape) != 3:
        raise DoesNotFit("model_needs_images", model, tuple(input_shape))
    return input_shape[0], input_shape[1], input_shape[2]


def per_block(value: Any, key: str, blocks: int) -> list[Any]:
    """One value (a number or a name) for every block, or a list with one per block."""
    if isinstance(value, (int, str)):
        return [value] * blocks
    if len(value) != blocks:  # the config check refuses it first (config/model_checks.py)
        raise ValueError(f"model.{key}: {len(value)} values for {blocks} conv blocks")
    return list(value)


def conv_size(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1
