"""Image files as the user meant them, for nnexp-predict: any PNG or JPEG to grey levels (or RGB) in 0..1.

PIL's `convert("L")` alone is not enough: it clips 16-bit greyscale at 255 (most of a 16-bit digit turns
white), drops transparency onto whatever colour the transparent pixels happen to hold, ignores a camera's
EXIF rotation and, for a huge file, lets PIL print its own decompression-bomb warning or traceback. Here:

- 16-bit greyscale (I;16, I;16B, I) is scaled by its full range, value / 65535; float images (F) are read
  on 0..1 when they lie in it, else on PIL's 0..255 scale.
- Transparency (RGBA, LA, PA, a palette or grey image with a transparent colour) is composited onto the
  training images' background; palette, CMYK and the other colour modes are converted to RGB first.
- A photo's EXIF orientation is applied; an animated image gives its first frame (with a warning).
- An image over MAX_PIXELS is refused from its header, before a pixel is decoded, as a DataError.
- A warning in nnexp's words for dark strokes on a transparent background (they vanish into the dark
  background); what else looks unlike the training images is unlike_training.py's.
- With `drawn` (nnexp-predict --drawn), an image with a light background is inverted without asking.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from nnexp.errors import DataError, first_line

# Refused unread above this: more than any camera's photo (108 MP is 12000x9000), and as 32-bit floats per
# channel already half a gigabyte. PIL warns from 89.5 MP and refuses from 179 MP with its own messages;
# nnexp checks first, with its own.
MAX_PIXELS = 120_000_000
# Every image data set nnexp trains on (digits, MNIST, Fashion-MNIST) is drawn light on a dark background:
# a background pixel is 0, ink is 1.
BRIGHT = 0.5  # a border or stroke averaging above this (on 0..1) is light

Warn = Callable[[str], None]


def read_pixels(
    path: Path, channels: int, size: tuple[int, int], invert: bool, warn: Warn, drawn: bool = False
) -> tuple[np.ndarray, bool]:
    """The image at `path` as float32 (h, w, channels) in 0..1, light on dark as the training images are
    (inverted first with `invert`, or with `drawn` when its border is light), and whether `drawn` inverted
    it. `size` (height, width) is the training's, for the messages only. An unreadable or oversized file is
    a DataError naming it."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    found_light = False
    try:
        with _nnexp_size_limit(), Image.open(path) as opened:
            width, height = opened.size
            if width * height > MAX_PIXELS:
                raise _too_large(path, width, height, size)
            frames = getattr(opened, "n_frames", 1)
            if frames > 1:
                warn(f"{path} is animated ({frames} frames): only its first frame is used")
            image = ImageOps.exif_transpose(opened)  # a photo taken sideways, stood up as it was seen
            pixels = image_pixels(image, channels, invert, str(path), None if drawn else warn)
            if drawn and not invert:
                found_light = border_mean(pixels) > BRIGHT
                # read again inverted: transparent pixels then become the paper's white, as --invert has it
                pixels = image_pixels(image, channels, found_light, str(path), warn)
    except Image.DecompressionBombError as error:  # never with PIL's check off; should a plugin check anyway
        raise DataError(f"{path}: {first_line(error)}: resize it first") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
        raise DataError(f"{path}: not a readable PNG or JPEG image ({first_line(error)}); give one") from None
    return pixels, found_light


def border_mean(pixels: np.ndarray) -> float:
    """The mean of an image's outer 1/16 on each side: its background's brightness."""
    height, width = pixels.shape[:2]
    ring = max(1, min(height, width) // 16)
    border = np.concatenate(
        [pixels[:ring].ravel(), pixels[-ring:].ravel(), pixels[:, :ring].ravel(), pixels[:, -ring:].ravel()]
    )
    return float(border.mean(dtype=np.float64))


def image_pixels(
    image: Any, channels: int, invert: bool = False, name: str = "the image", warn: Warn | None = None
) -> np.ndarray:
    """A PIL image of any mode as float32 (h, w, channels) in 0..1, inverted with `invert`.

    Transparent pixels become the training images' background: black, or white when `invert` is given,
    so that after the inversion they are black too. Black because a transparent pixel holds no ink, and
    in the training images no ink is 0 (MNIST and the digits are light strokes on a dark background);
    compositing onto white, as a viewer shows it, would make every transparent image a light-background
    one. A drawing of dark strokes on a transparent background therefore needs `invert`, as the same
    drawing on white does: `warn` says so when the strokes come out dark.
    """
    from PIL import Image

    mode = image.mode
    if mode.startswith("I;16") or mode == "I":  # 16-bit greyscale: PNG has no deeper grey
        grey = np.clip(np.asarray(image, dtype=np.float32) / 65535, 0, 1)
        pixels = _inverted(grey, invert)[..., None]
    elif mode == "F":  # a float image: 0..1 as it stands, else PIL's scale for F (convert("L") reads 0..255)
        grey = np.asarray(image, dtype=np.float32)
        grey = np.nan_to_num(grey / (1 if grey.size and np.nanmax(grey) <= 1 else 255), nan=0.0)
        pixels = _inverted(np.clip(grey, 0, 1), invert)[..., None]
    elif _has_transparency(image):
        rgba = image.convert("RGBA")
        if warn is not None:
            _warn_if_ink_vanishes(rgba, name, invert, warn)
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255) if invert else (0, 0, 0, 255))
        flat = Image.alpha_composite(background, rgba).convert("L" if channels == 1 else "RGB")
        pixels = _inverted(_unit(flat), invert)
    else:
        if mode not in ("1", "L", "RGB"):  # palette, CMYK, YCbCr, LAB, HSV, RGBX...: RGB first
            image = image.convert("RGB")
        pixels = _inverted(_unit(image.convert("L" if channels == 1 else "RGB")), invert)
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    if pixels.shape[-1] != channels:  # a grey image for an RGB run: the grey level in each channel
        pixels = np.repeat(pixels, channels, axis=-1)
    return pixels


def _unit(image: Any) -> np.ndarray:
    pixels = np.asarray(image, dtype=np.float32)
    pixels /= 255
    return pixels


def _inverted(pixels: np.ndarray, invert: bool) -> np.ndarray:
    return 1 - pixels if invert else pixels


def _has_transparency(image: Any) -> bool:
    return image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info


@contextmanager
def _nnexp_size_limit() -> Iterator[None]:
    """PIL's decompression-bomb check off while nnexp applies its own: PIL's refusal names no width and
    height and its warning is raw PIL text; nnexp-predict compares width x height to MAX_PIXELS from the
    header instead, before decoding. (A process-wide setting, put back at once: nnexp-predict reads its
    images one at a time, in one thread.)"""
    from PIL import Image

    before = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            yield
    finally:
        Image.MAX_IMAGE_PIXELS = before


def _too_large(path: Path, width: int, height: int, size: tuple[int, int]) -> DataError:
    return DataError(
        f"{path} is {width}x{height} pixels, over nnexp-predict's limit of {MAX_PIXELS:,} pixels: resize it "
        f"first (the run was trained on {size[1]}x{size[0]} images)"
    )


def _for_statistics(image: Any) -> Any:
    """The image box-averaged down to about 512 pixels a side: enough for a mean, cheap for any size."""
    factor = max(image.size) // 512
    return image.reduce(factor) if factor > 1 else image


def _warn_if_ink_vanishes(rgba: Any, name: str, invert: bool, warn: Warn) -> None:
    """Strokes drawn on a transparent background are composited onto the dark background: dark strokes
    (light ones with `invert`) would vanish into it. The strokes' brightness: the 95th percentile of the
    opaque pixels (a light digit's are near white, whatever its grey edges)."""
    small = _for_statistics(rgba)
    alpha = np.asarray(small.getchannel("A"))
    opaque = alpha >= 128
    if alpha.min() == 255 or not opaque.any():  # nothing transparent, or nothing drawn
        return
    grey = np.asarray(small.convert("RGB").convert("L"), dtype=np.float64) / 255
    ink = float(np.percentile((1 - grey if invert else grey)[opaque], 95))
    if ink <= BRIGHT:
        fix = "leave out --invert" if invert else "if it is drawn dark, pass --invert"
        warn(
            f"{name} is drawn on a transparent background, which becomes the training images' dark "
            f"background, and its strokes come out dark too (the brightest {ink:.2f} of white): {fix}"
        )


__all__ = ["MAX_PIXELS", "border_mean", "image_pixels", "read_pixels"]
