"""model=sequential: an nn.Sequential written as a list of layers, the way the lectures write it.

The sizes come from the data: a conv layer's input channels and a linear layer's input features from the
shape the layers before it produce, a batchnorm's size from the layer before it, and a bare `linear` (the
last linear layer) outputs the data's size. Layers are built in list order with torch's own
initialisation, so a seeded run draws the same weights as the same nn.Sequential written by hand.
Each layer's output shape is found by running it on a meta tensor (no memory, no arithmetic).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from nnexp.errors import first_line
from nnexp.models.layer_list import LayerSpec, read_layers
from nnexp.models.layers import OUTPUT_ACTIVATIONS, DoesNotFit

Shape = tuple[int, ...]  # one example's shape, without the batch dimension


class Sequential(nn.Sequential):
    def __init__(self, input_shape: tuple[int, ...], num_outputs: int, layers: Sequence[Any]) -> None:
        built: list[nn.Module] = []
        shape: Shape = tuple(input_shape)
        for spec in read_layers(list(layers)):
            try:
                layer = _layer(spec, shape, num_outputs)
            except DoesNotFit:
                raise
            except (ValueError, RuntimeError) as error:  # torch refusing a combination of options
                raise DoesNotFit("cannot_build", spec, shape, first_line(error)) from None
            shape = _output_shape(layer, shape, spec)
            built.append(layer)
        if shape != (num_outputs,):
            raise DoesNotFit("ends_wrong", None, shape, outputs=num_outputs)
        super().__init__(*built)


def _layer(spec: LayerSpec, shape: Shape, num_outputs: int) -> nn.Module:
    """The torch module for `spec`, given the shape of one example arriving at it."""
    options = spec.options
    if spec.name == "linear":
        if len(shape) != 1:
            raise DoesNotFit("needs_vector", spec, shape)
        size = options["out_features"] or num_outputs
        return nn.Linear(shape[0], size, bias=options["bias"])
    if spec.name == "conv":
        _need_images(spec, shape)
        return nn.Conv2d(
            shape[0],
            options["channels"],
            options["kernel_size"],
            options["stride"],
            options["padding"],
            bias=options["bias"],
        )
    if spec.name == "pool":
        _need_images(spec, shape)
        if options["type"] == "global_avg":
            return nn.AdaptiveAvgPool2d(1)  # (C, H, W) -> (C, 1, 1)
        pool = nn.MaxPool2d if options["type"] == "max" else nn.AvgPool2d
        return pool(options["kernel_size"], options["stride"], options["padding"])
    if spec.name == "batchnorm":
        if len(shape) not in (1, 3):
            raise DoesNotFit("normalises", spec, shape)
        norm = nn.BatchNorm1d if len(shape) == 1 else nn.BatchNorm2d
        return norm(shape[0], eps=options["eps"], momentum=options["momentum"])
    if spec.name == "dropout":
        return nn.Dropout(options["p"])
    if spec.name == "flatten":
        return nn.Flatten()
    if spec.name == "identity":
        return nn.Identity()
    if spec.name == "leaky_relu":
        return nn.LeakyReLU(options["negative_slope"])
    if spec.name in ("softmax", "log_softmax"):
        # Over the features of a vector, over the channels of an image (as torch's nn.Softmax picks).
        return (nn.Softmax if spec.name == "softmax" else nn.LogSoftmax)(dim=1)
    return OUTPUT_ACTIVATIONS[spec.name]()


def _need_images(spec: LayerSpec, shape: Shape) -> None:
    if len(shape) != 3:
        raise DoesNotFit("needs_images", spec, shape)


def _output_shape(layer: nn.Module, shape: Shape, spec: LayerSpec) -> Shape:
    """Run a meta copy of `layer` on two examples of `shape`: torch's own answer, without arithmetic."""
    probe = copy.deepcopy(layer).to("meta").eval()
    try:
        with torch.no_grad():
            out = probe(torch.empty(2, *shape, device="meta"))
    except (RuntimeError, ValueError) as error:
        raise DoesNotFit("cannot_take", spec, shape, first_line(error)) from None
    result = tuple(out.shape[1:])
    if any(size < 1 for size in result):
        raise DoesNotFit("shrinks", spec, shape)
    return result
