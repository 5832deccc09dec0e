"""Data augmentation: random affine transforms of training images, per image, batched on the device.

torchvision.transforms.v2 applied to a batch draws one set of random parameters for the whole batch;
here every image gets its own rotation, zoom, shift and flip through one `affine_grid`/`grid_sample`.
Only the batches the model trains on are augmented; evaluation sees the images as they are.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from nnexp.data import TensorSplit


class RandomAffine:
    def __init__(
        self,
        degrees: float,
        translate: float,
        scale: Sequence[float],
        horizontal_flip: float,
    ) -> None:
        self.max_angle = math.radians(degrees)
        self.translate = translate
        self.scale = tuple(scale)
        self.horizontal_flip = horizontal_flip

    def __call__(self, images: torch.Tensor, background: torch.Tensor | None = None) -> torch.Tensor:
        """images (B, C, H, W) float; `background` (C,): the value of an empty pixel (0 when None)."""
        count, device = len(images), images.device

        def uniform(low: float, high: float) -> torch.Tensor:
            return torch.empty(count, device=device).uniform_(low, high)

        angle = uniform(-self.max_angle, self.max_angle)
        zoom = uniform(*self.scale)
        flip = torch.where(torch.rand(count, device=device) < self.horizontal_flip, -1.0, 1.0)
        # affine_grid's coordinates run from -1 to 1, so a shift by a fraction f of the side is 2f.
        shift_x, shift_y = (
            uniform(-2 * self.translate, 2 * self.translate),
            uniform(-2 * self.translate, 2 * self.translate),
        )
        # theta maps each output pixel to where it samples the input: rotate, zoom in by `zoom`, mirror x.
        cos, sin = angle.cos() / zoom, angle.sin() / zoom
        theta = torch.stack(
            [torch.stack([cos * flip, -sin, shift_x], 1), torch.stack([sin * flip, cos, shift_y], 1)], 1
        )  # (B, 2, 3)
        grid = F.affine_grid(theta, list(images.shape), align_corners=False)
        if background is None:
            return F.grid_sample(images, grid, align_corners=False)
        # Pixels shifted in from outside the image take the background value, not 0.
        background = background.view(1, -1, 1, 1)
        return F.grid_sample(images - background, grid, align_corners=False) + background


def build_augment(options: dict) -> RandomAffine:
    """The transform `options` describe (config/data_fit.py has checked that the data are images)."""
    return RandomAffine(**options)


def augmented(split: TensorSplit, augment: RandomAffine) -> TensorSplit:
    """The same tensors, with `augment` run on each batch after the split's own transform."""
    prepare: Callable[[torch.Tensor], torch.Tensor] = split.transform or (lambda inputs: inputs)
    # What an all-zero input (an empty pixel) becomes, e.g. -mean/std for normalised images.
    background = prepare(torch.zeros_like(split.inputs[:1]))[0, :, 0, 0]

    def transform(inputs: torch.Tensor) -> torch.Tensor:
        return augment(prepare(inputs), background)

    return TensorSplit(split.inputs, split.targets, transform)
