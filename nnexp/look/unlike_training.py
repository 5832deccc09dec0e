"""The one warning line nnexp-predict gives when an image looks unlike the run's training images.

The model still answers, but about a picture it never saw the like of, and as confidently as ever. Checked
in this order, the first that holds is the line: a light background (the data sets are light on dark);
the size of another data set's images (an MNIST image given to the 8x8 digits model); far larger than the
training size; a drawing not framed as the data set's were (filling too little or too much of the image,
or off its centre); a mean intensity after preparation far from the training images'.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from nnexp.look.drawn import FRAMES, Frame, frame_of, ink_of
from nnexp.look.images_in import BRIGHT, border_mean

# Shrinking more than this many times per side averages a drawn stroke down to a faint smear.
LARGER_THAN_TRAINING = 8
# The training images' mean pixel on 0..1 (white is 1): digits from the data (tests check it), MNIST's and
# Fashion-MNIST's the published training-set means that torchvision's examples normalise by.
TRAINING_MEAN = {"digits": 0.3053, "mnist": 0.1307, "fashion_mnist": 0.2860}
# "Far" from the training mean: this many times fainter or brighter. Digits' images lie within 0.76-1.3
# times their mean (99% of them), MNIST's thinnest 1s near half of it.
FAR = 3.0
# A drawing's longer side filling less than this share of what the data set's fill (or more than its
# inverse), or its centre this share of the image off the middle, is framed unlike them.
FILLED = 0.8
OFF_CENTRE = 0.2


def unlike_training(
    name: Path | str, read: np.ndarray, prepared: np.ndarray, spec: Any, invert: bool, drawn: bool
) -> str | None:
    """What makes the image unlike the training images, in one line, or None. `read`: the image as read,
    (h, w, C) in 0..1, light on dark; `prepared`: what the model gets, (C, H, W) in 0..1 (before the
    run's pixel scaling)."""
    size = tuple(spec.input_shape[1:])
    # data.synthetic's random pixels are like no drawing: nothing to compare a drawing's content with
    frame = None if spec.details.get("synthetic") else frame_of(spec)
    for check in (
        _background(name, read, invert, drawn),
        None if drawn else _another_data_sets_size(name, read, size, spec.name),
        None if drawn else _far_larger(name, read, size),
        None if drawn or frame is None else _framing(name, read, frame),
        None if frame is None else _intensity(name, prepared, spec.name, drawn),
    ):
        if check is not None:
            return check
    return None


def _background(name: Path | str, read: np.ndarray, invert: bool, drawn: bool) -> str | None:
    background = border_mean(read)
    if background <= BRIGHT:
        return None
    if invert:
        fix = "leave out --invert"
    elif drawn:  # --drawn inverts a light background itself: this one stayed light
        fix = "give the drawing on a plain background"
    else:
        fix = "if it is drawn dark on light, pass --invert (or --drawn, which also crops and centres it)"
    return (
        f"{name} has a light background ({background:.2f} of white at its border"
        f"{', after --invert' if invert else ''}) but the run's training images are light on dark: {fix}"
    )


def _another_data_sets_size(
    name: Path | str, read: np.ndarray, size: tuple[int, ...], data: str
) -> str | None:
    shape = read.shape[:2]
    if shape == size:
        return None
    other = next((frame for frame in FRAMES.values() if (frame.size, frame.size) == shape), None)
    if other is None:
        return None
    return (
        f"{name} is {shape[1]}x{shape[0]} pixels, the size of {other.said}, but the run was trained on "
        f"{size[1]}x{size[0]} images ({data}), framed otherwise: pass --drawn to crop it to its ink and "
        f"frame it as they were"
    )


def _far_larger(name: Path | str, read: np.ndarray, size: tuple[int, ...]) -> str | None:
    height, width = read.shape[:2]
    times = max(height / size[0], width / size[1])
    if times <= LARGER_THAN_TRAINING:
        return None
    return (
        f"{name} is {width}x{height} pixels, {times:.0f} times the {size[1]}x{size[0]} the run was trained "
        f"on: shrinking it averages thin strokes away; crop it to the drawing, or draw thicker"
    )


def _framing(name: Path | str, read: np.ndarray, frame: Frame) -> str | None:
    """A drawing left as drawn: too small or too large in its image, or off its centre."""
    grey = read.mean(axis=-1)
    ink = ink_of(grey)
    if ink is None:
        return None  # blank: the intensity says so
    height, width = grey.shape
    filled = max(ink.height / height, ink.width / width)
    expected = frame.box / frame.size
    if frame.centre == "mass":
        centre = ink.mass
    else:
        centre = ((ink.top + ink.bottom - 1) / 2, (ink.left + ink.right - 1) / 2)
    off = max(abs(centre[0] - (height - 1) / 2) / height, abs(centre[1] - (width - 1) / 2) / width)
    unlike = []
    if filled < FILLED * expected or filled > min(1.0, expected / FILLED):
        unlike.append(f"its ink fills {filled:.0%} of the image where {frame.said} fill {expected:.0%}")
    if off > OFF_CENTRE:
        unlike.append(f"it sits {off:.0%} of the image off the centre where {frame.said} are centred")
    if not unlike:
        return None
    return f"{name}: {' and '.join(unlike)}: pass --drawn to crop, scale and centre it as they were"


def _intensity(name: Path | str, prepared: np.ndarray, data: str, drawn: bool) -> str | None:
    mean, expected = float(prepared.mean(dtype=np.float64)), TRAINING_MEAN.get(data)
    if expected is None or expected / FAR <= mean <= expected * FAR:
        return None
    fainter = mean < expected
    if drawn:
        fix = "draw with a thicker pen" if fainter else "draw with a thinner pen"
    else:
        fix = "draw thicker, or pass --drawn to crop it to its ink" if fainter else "draw thinner"
    return (
        f"{name}: as the model sees it, its mean pixel is {mean:.3f} of white where the training images' "
        f"({data}) is {expected:.3f}: far {'fainter' if fainter else 'brighter'}; {fix}"
    )


__all__ = ["BRIGHT", "FAR", "LARGER_THAN_TRAINING", "TRAINING_MEAN", "unlike_training"]
