"""A drawn digit prepared as the data set's digits were (`nnexp-predict --drawn`).

Neither data set's digits are a picture simply resized. MNIST's (LeCun et al.) were cropped to the ink, scaled
so that the longer side fits a 20x20 box (keeping the aspect ratio), and placed in 28x28 with their centre
of mass at the centre: a 4-pixel dark margin all round. scikit-learn's digits (UCI optdigits) were scaled to
fill a 32x32 frame, their height always the whole frame (all 1,797 are 8 rows tall), centred, then counted
in 4x4 blocks into 0..16 grey levels. Fashion-MNIST's pictures were trimmed, their longest edge scaled to 28
and centred. A drawing on a canvas of any size gets the same here, so that a "1" drawn small in a corner
looks to the model as the training's 1s did.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

# A pixel at least this bright (on 0..1, light on dark) is ink: above the noise of a JPEG or a scan, below
# the grey of an anti-aliased stroke's core.
INK = 0.1


@dataclass(frozen=True)
class Frame:
    """How a data set placed its drawings: the side of the image, the side of the box the drawing's longer
    side was scaled to, and which centre was put at the image's centre ("mass" or the ink's "box")."""

    said: str  # the data set's drawings, in words
    size: int
    box: int
    centre: str


FRAMES = {
    "digits": Frame("scikit-learn's digits", 8, 8, "box"),
    "mnist": Frame("MNIST's digits", 28, 20, "mass"),
    "fashion_mnist": Frame("Fashion-MNIST's pictures", 28, 28, "box"),
}


@dataclass(frozen=True)
class Ink:
    """Where the ink lies in a grey image: its bounding box (top, bottom, left, right; ends excluded) and
    its centre of mass (row, column), in pixels."""

    top: int
    bottom: int
    left: int
    right: int
    mass: tuple[float, float]

    @property
    def height(self) -> int:
        return self.bottom - self.top

    @property
    def width(self) -> int:
        return self.right - self.left


def ink_of(grey: np.ndarray) -> Ink | None:
    """The ink of a grey (h, w) image in 0..1, light on dark; None when nothing is as bright as INK."""
    rows, columns = np.flatnonzero((grey >= INK).any(axis=1)), np.flatnonzero((grey >= INK).any(axis=0))
    if rows.size == 0:
        return None
    weights = grey.astype(np.float64)
    total = weights.sum()
    mass = (
        float((weights.sum(axis=1) * np.arange(grey.shape[0])).sum() / total),
        float((weights.sum(axis=0) * np.arange(grey.shape[1])).sum() / total),
    )
    return Ink(int(rows[0]), int(rows[-1]) + 1, int(columns[0]), int(columns[-1]) + 1, mass)


def resize(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(1, C, h, w) to (1, C, *size): averaging when shrinking (no aliasing: a 64x64 drawing of an 8x8
    digit gives that digit back), bilinear when enlarging."""
    import torch

    shrinking = image.shape[-2] >= size[0] and image.shape[-1] >= size[1]
    return torch.nn.functional.interpolate(image, size=size, mode="area" if shrinking else "bilinear")


def prepare_drawn(pixels: np.ndarray, frame: Frame, size: tuple[int, int]) -> tuple[torch.Tensor, str]:
    """The drawing (h, w, C) in 0..1, light on dark, as the data set's drawings were made: (C, *size) in
    0..1, and what was done in words."""
    import torch

    image = torch.from_numpy(np.ascontiguousarray(pixels)).permute(2, 0, 1)[None]  # (1, C, h, w)
    ink = ink_of(pixels.mean(axis=-1))
    if ink is None:  # nothing to crop to: the whole picture, resized (the faintness is warned about)
        return resize(image, size)[0], f"no ink as bright as {INK:g} of white: resized whole to {_x(size)}"
    crop = image[..., ink.top : ink.bottom, ink.left : ink.right]
    height, width = size
    scale = frame.box * min(height, width) / frame.size / max(ink.height, ink.width)
    glyph = resize(crop, (max(1, round(ink.height * scale)), max(1, round(ink.width * scale))))
    glyph = glyph.clamp(0, 1)
    placed, (row, column) = _placed(glyph, frame, size)
    where = "its centre of mass" if frame.centre == "mass" else "its ink's box"
    return placed, (
        f"cropped to the ink ({ink.width}x{ink.height} pixels), scaled to {glyph.shape[-1]}x"
        f"{glyph.shape[-2]}, {where} centred in {_x(size)} (at column {column}, row {row}), "
        f"as {frame.said} were"
    )


def _placed(glyph: torch.Tensor, frame: Frame, size: tuple[int, int]) -> tuple[torch.Tensor, tuple[int, int]]:
    """The glyph (1, C, h, w) on a dark (C, *size) canvas, its chosen centre at the canvas's centre; and the
    canvas pixel its top left corner went to."""
    import torch

    _, channels, h, w = glyph.shape
    height, width = size
    if frame.centre == "mass":
        grey = glyph[0].mean(dim=0).numpy()
        found = ink_of(grey)
        centre = found.mass if found is not None else ((h - 1) / 2, (w - 1) / 2)
    else:
        centre = ((h - 1) / 2, (w - 1) / 2)
    # whole pixels, as MNIST's were translated; never pushed off the canvas
    row = min(max(math.floor((height - 1) / 2 - centre[0] + 0.5), 0), height - h)
    column = min(max(math.floor((width - 1) / 2 - centre[1] + 0.5), 0), width - w)
    canvas = torch.zeros((channels, height, width), dtype=glyph.dtype)
    canvas[:, row : row + h, column : column + w] = glyph[0]
    return canvas, (row, column)


def _x(size: tuple[int, int]) -> str:
    return f"{size[1]}x{size[0]}"


def frame_of(spec: Any) -> Frame | None:
    """How the run's data set framed its drawings (data.synthetic's random pixels stand in for them, in
    the same frame); None for a data set nnexp does not know the making of."""
    return FRAMES.get(spec.name)


__all__ = ["FRAMES", "INK", "Frame", "Ink", "frame_of", "ink_of", "prepare_drawn", "resize"]
