"""The pictures of what a model learned: example grids with their labels, the confusion matrix, the
first layer's weights as images, and a regression's fit.

Each function draws from arrays it is given and writes one PNG, drawn once and written whole
(look/canvas.py: matplotlib's Figure on its own Agg canvas, no pyplot). A grid is one image with its labels
as text, not one axes per example: 32 axes took ten times as long to draw.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nnexp.look.canvas import DPI, FAST_PNG, colour_map, new_figure, save_png, subplots  # noqa: F401 (DPI, FAST_PNG: for the views drawn elsewhere)
from nnexp.look.plots import title_figure, wrap_title

TITLE_PT = 12  # every title, readable on a projector; the run's headline (what ran) leads each figure


def as_pictures(images: np.ndarray) -> np.ndarray:
    """(N, C, H, W) model inputs -> (N, H, W) grey or (N, H, W, 3) colour, for display."""
    if images.ndim == 4 and images.shape[1] == 3:
        low, high = images.min(), images.max()
        return ((images - low) / max(high - low, 1e-12)).transpose(0, 2, 3, 1)
    return images.reshape(len(images), *images.shape[-2:]) if images.ndim == 4 else images


def _mosaic(tiles: np.ndarray, columns: int, band: float) -> tuple[np.ndarray, int, int, int]:
    """Tiles laid out in rows with a blank band above each for its label: (canvas, cell_h, cell_w, top)."""
    count, height, width = tiles.shape[:3]
    rows = math.ceil(count / columns)
    top, gap = max(1, round(band * height)), max(1, round(0.12 * width))
    cell_h, cell_w = height + top, width + gap
    canvas = np.full((rows * cell_h, columns * cell_w - gap, *tiles.shape[3:]), np.nan)
    for index, tile in enumerate(tiles):
        row, column = divmod(index, columns)
        canvas[row * cell_h + top : (row + 1) * cell_h, column * cell_w : column * cell_w + width] = tile
    return canvas, cell_h, cell_w, top


LABEL_INCH_PER_CHARACTER = 0.075  # a label's width at fontsize 8, with a gap to its neighbour


def save_image_grid(
    images: np.ndarray,
    labels: Sequence[str],
    wrong: Sequence[bool],
    path: Path,
    title: str,
    columns: int = 8,
    cmap: str = "gray",
    symmetric: bool = False,
    per_cell: float = 1.25,  # inches of figure per picture, whatever its size, so labels stay legible
    headline: str = "",  # what ran (nnexp.look.what_ran), above `title`
) -> Path:
    """A grid of pictures, each under its label; the wrong ones labelled and framed in red."""
    figure = new_figure()  # sized below, once the title's lines are known
    from matplotlib.patches import Rectangle

    tiles = as_pictures(np.asarray(images, dtype=np.float64))
    lines = max((label.count("\n") + 1 for label in labels if label), default=0)
    longest = max((len(line) for label in labels for line in label.splitlines()), default=0)
    per_cell = max(per_cell, LABEL_INCH_PER_CHARACTER * longest)  # long class names must not overlap
    band = 0.3 + 0.25 * lines if lines else 0.12
    canvas, cell_h, cell_w, top = _mosaic(tiles, min(columns, len(tiles)), band=band)
    height, width = tiles.shape[1:3]
    margin = 0.1  # inches
    grid_width = max(canvas.shape[1] / cell_w * per_cell, 4.0)  # room for the title of a short grid
    title = wrap_title("\n".join(filter(None, [headline, title])), grid_width + 2 * margin, TITLE_PT)
    title_height = 0.2 + TITLE_PT / 72 * 1.25 * (title.count("\n") + 1)
    grid_height = grid_width * canvas.shape[0] / canvas.shape[1]  # the canvas's own aspect: no letterbox
    figure.set_size_inches(grid_width + 2 * margin, grid_height + margin + title_height)
    width_in, height_in = figure.get_size_inches()
    axis = figure.add_axes(
        (margin / width_in, margin / height_in, grid_width / width_in, grid_height / height_in)
    )
    colours = colour_map(cmap).with_extremes(bad="white")
    scale = np.nanmax(np.abs(canvas)) if symmetric else None
    axis.imshow(
        canvas,
        cmap=colours,
        vmin=-scale if symmetric else np.nanmin(canvas),
        vmax=scale if symmetric else np.nanmax(canvas),
        interpolation="nearest",
    )
    for index, label in enumerate(labels):
        if not label:
            continue
        row, column = divmod(index, min(columns, len(tiles)))
        x, y = column * cell_w + width / 2 - 0.5, row * cell_h + top - 0.5
        colour = "tab:red" if wrong[index] else "black"
        axis.text(x, y - 0.08 * height, label, ha="center", va="bottom", fontsize=8, color=colour)
        if wrong[index]:
            axis.add_patch(
                Rectangle(
                    (column * cell_w - 0.5, y),
                    width,
                    height,
                    fill=False,
                    edgecolor="tab:red",
                    lw=2,
                    clip_on=False,
                )
            )
    axis.set_axis_off()
    title_figure(figure, title, TITLE_PT, y=1 - 0.08 / height_in, va="top")
    return save_png(figure, path)


def save_confusion_matrix(
    matrix: np.ndarray, names: list[str], path: Path, title: str, headline: str = ""
) -> Path:
    """Counts, true classes down and predicted across; a count in every cell that is not 0.

    Drawn here rather than with scikit-learn's ConfusionMatrixDisplay, which writes all C x C counts:
    the hundred zeros of a good 10-class model took most of the drawing time and hide the mistakes.
    """
    size = max(4.5, 0.45 * len(names) + 2)
    figure, axis = subplots(figsize=(size, size))
    axis.imshow(matrix, cmap="Blues", interpolation="nearest")
    if len(names) <= 30:
        threshold = matrix.max() / 2
        for (row, column), count in np.ndenumerate(matrix):
            if count:
                colour = "white" if count > threshold else "black"
                axis.text(column, row, str(count), ha="center", va="center", color=colour, fontsize=9)
    ticks = np.arange(len(names))
    axis.set_xticks(
        ticks,
        names,
        rotation=45 if max(map(len, names)) > 2 else 0,
        ha="right" if max(map(len, names)) > 2 else "center",
    )
    axis.set_yticks(ticks, names)
    axis.set(xlabel="predicted", ylabel="true")
    axis.set_title(title, fontsize=TITLE_PT)
    lines = title_figure(figure, headline, TITLE_PT).get_text().count("\n") + 1 if headline else 0
    top = 1 - (0.45 + lines * TITLE_PT / 72 * 1.25) / size  # the axis's title, and the headline's lines
    figure.subplots_adjust(left=0.2, bottom=0.2, right=0.97, top=top)  # tight_layout drew it twice
    return save_png(figure, path)


def first_layer_pictures(weight: np.ndarray, input_shape: Sequence[int]) -> np.ndarray | None:
    """The first layer's weights as one picture per unit: (units, H, W[, 3]), or None when they are not
    pictures (a first linear layer that does not read the whole image)."""
    if len(input_shape) != 3:
        return None
    channels, height, width = input_shape
    if weight.ndim == 2 and weight.shape[1] == channels * height * width:  # Linear on the flattened image
        weight = weight.reshape(len(weight), channels, height, width)
    elif weight.ndim != 4:  # a Conv2d's filters are (out, in, k, k) already
        return None
    if weight.shape[1] == 3:
        # each filter scaled on its own so its colours show
        low = weight.min(axis=(1, 2, 3), keepdims=True)
        high = weight.max(axis=(1, 2, 3), keepdims=True)
        return ((weight - low) / np.maximum(high - low, 1e-12)).transpose(0, 2, 3, 1)
    pictures = weight.mean(axis=1)
    # each unit scaled to its own largest weight, so a unit with small weights still shows its pattern
    return pictures / np.maximum(np.abs(pictures).max(axis=(1, 2), keepdims=True), 1e-12)


def save_weights(pictures: np.ndarray, layer: str, total: int, path: Path, headline: str = "") -> Path:
    """Each unit's weights as a picture: red for positive, blue for negative weights."""
    shown = len(pictures)
    labels = [""] * shown  # unlabelled (64 labels took a third of the drawing): units go row by row
    colour = pictures.ndim == 4
    what = (
        f"units 0-{shown - 1} of {total}, row by row" if shown < total else f"all {total} units, row by row"
    )
    title = f"first layer {layer}: {what}\neach scaled to its own largest weight" + (
        "" if colour else " (red +, blue -)"
    )
    return save_image_grid(
        pictures,
        labels,
        [False] * shown,
        path,
        title,
        columns=min(16, max(8, math.ceil(math.sqrt(shown)))),
        cmap="RdBu_r",
        symmetric=not colour,
        per_cell=0.8,
        headline=headline,
    )


def save_fit(
    targets: np.ndarray,
    predicted: np.ndarray,
    least_squares: np.ndarray | None,
    path: Path,
    target_name: str,
    curve: dict[str, Any] | None = None,
    split: str = "test",
    headline: str = "",
) -> Path:
    """Predicted against true for every row of `split` (the diagonal is a perfect fit), the least-squares
    baseline's predictions beside the network's; with a single feature, also the fitted curve."""
    panels = 2 if curve is not None else 1
    figure, axes = subplots(1, panels, figsize=(5.2 * panels, 4.6), squeeze=False)
    axis = axes[0][0]
    true, network = targets.reshape(-1), predicted.reshape(-1)
    # hollow circles, so a least-squares cross on the same spot (a linear model's answer) stays visible
    axis.scatter(true, network, s=28, facecolors="none", edgecolors="tab:blue", label="network", zorder=3)
    if least_squares is not None:
        axis.scatter(
            true,
            least_squares.reshape(-1),
            s=22,
            marker="x",
            color="tab:orange",
            label="least squares",
            zorder=4,
        )
    everything = np.concatenate(
        [true, network] + ([least_squares.reshape(-1)] if least_squares is not None else [])
    )
    low, high = float(everything.min()), float(everything.max())
    axis.plot([low, high], [low, high], color="grey", linestyle="--", linewidth=1, label="perfect fit")
    axis.set(xlabel=f"true {target_name}", ylabel=f"predicted {target_name}")
    axis.set_title(f"{split} rows", fontsize=TITLE_PT)
    axis.set_aspect("equal", adjustable="datalim")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    if curve is not None:
        axis = axes[0][1]
        if split != "train":  # with no test split the rows shown are the training rows themselves
            axis.scatter(curve["train_x"], curve["train_y"], s=10, color="lightgrey", label="training rows")
        axis.scatter(curve["shown_x"], curve["shown_y"], s=18, color="black", label=f"{split} rows")
        axis.plot(curve["grid"], curve["network"], color="tab:blue", linewidth=2, label="network")
        if curve.get("least_squares") is not None:
            axis.plot(
                curve["grid"],
                curve["least_squares"],
                color="tab:orange",
                linestyle="--",
                label="least squares",
            )
        axis.set(xlabel=curve["feature"], ylabel=target_name)
        axis.set_title("the fit over the data", fontsize=TITLE_PT)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    if headline:
        title_figure(figure, headline, TITLE_PT)
    figure.tight_layout()
    return save_png(figure, path)
