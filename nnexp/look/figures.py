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


def _mosaic(
    tiles: np.ndarray, columns: int, band: float, blank: float = np.nan
) -> tuple[np.ndarray, int, int, int]:
    """Tiles laid out in rows with a blank band above each for its label: (canvas, cell_h, cell_w, top).
    The canvas has the tiles' dtype; `blank` fills what no tile covers."""
    count, height, width = tiles.shape[:3]
    rows = math.ceil(count / columns)
    top, gap = max(1, round(band * height)), max(1, round(0.12 * width))
    cell_h, cell_w = height + top, width + gap
    canvas = np.full((rows * cell_h, columns * cell_w - gap, *tiles.shape[3:]), blank, dtype=tiles.dtype)
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
    """The first layer's weights as one picture per unit, as they are (no scaling): (units, H, W) for
    grey inputs, (units, H, W, 3) for colour; None when they are not pictures (a first linear layer that
    does not read the whole image)."""
    if len(input_shape) != 3:
        return None
    channels, height, width = input_shape
    if weight.ndim == 2 and weight.shape[1] == channels * height * width:  # Linear on the flattened image
        weight = weight.reshape(len(weight), channels, height, width)
    elif weight.ndim != 4:  # a Conv2d's filters are (out, in, k, k) already
        return None
    if weight.shape[1] == 3:
        return weight.transpose(0, 2, 3, 1)
    return weight.mean(axis=1)


WEIGHT_LABEL_PT = 10  # a template's class name
WEIGHT_INCH_PER_CHARACTER = 0.094  # a label's width at WEIGHT_LABEL_PT


def weight_columns(count: int) -> int:
    """A wide grid for a slide: one row up to 8 pictures, two up to 20, then about square (at most 16)."""
    if count <= 8:
        return count
    if count <= 20:
        return math.ceil(count / 2)
    return min(16, math.ceil(math.sqrt(count)))


def save_weights(
    pictures: np.ndarray,
    layer: str,
    total: int,
    path: Path,
    headline: str = "",
    names: Sequence[str] | None = None,
    unit: str = "unit",
) -> Path:
    """Each unit's weights as a picture, all on one colour scale symmetric about 0 with its colour bar,
    so units compare: a unit drawn pale has small weights. `names`: one label per picture (a softmax
    regression's templates, one per class). Colour filters are drawn as colours, mid grey for 0.

    Cheap to draw: the weights are coloured here, each a square of whole pixels, and the grid and the bar
    are copied pixel for pixel onto the figure (`_pixels`), with no axes; an axes, its resampled image and
    matplotlib's Colorbar (a second axes, its ticks) made the picture twice as slow.
    """
    shown = len(pictures)
    colour = pictures.ndim == 4
    scale = float(np.abs(pictures).max()) or 1.0  # the largest weight shown, of either sign
    colours = colour_map("gray" if colour else "RdBu_r")
    levels = 0.5 + pictures / (2 * scale)  # -scale 0, 0 a half, +scale 1: per channel for colour
    if colour:  # RGBA bytes, as matplotlib draws them: it converts anything else at the output's size
        alpha = np.ones((*levels.shape[:3], 1))
        tiles = np.round(255 * np.concatenate([levels, alpha], axis=3)).astype(np.uint8)
    else:
        tiles = colours(levels, bytes=True)
    size = max(tiles.shape[1:3])
    tile_px = 90 if shown <= 16 else 64  # figure pixels a picture at DPI 100: legible when projected
    zoom = max(1, round(tile_px / size))  # each weight a zoom x zoom square of pixels
    if names:  # wide enough for the longest name (a cell is its tile and a gap of 12%)
        longest = DPI * WEIGHT_INCH_PER_CHARACTER * max(map(len, names))
        zoom = max(zoom, math.ceil(longest / (1.12 * size)))
    tiles = tiles.repeat(zoom, axis=1).repeat(zoom, axis=2)  # coloured first: the zoom copies bytes
    height, width = tiles.shape[1:3]
    label_px = 1.6 * WEIGHT_LABEL_PT / 72 * DPI if names else 0.0
    columns = weight_columns(shown)
    grid, cell_h, cell_w, top = _mosaic(tiles, columns, max(0.12, label_px / height), blank=255)
    grid_h, grid_w = grid.shape[:2]
    margin, gap, bar_w, bar_text = 15, 20, 18, 85  # figure pixels; bar_text: its numbers and label
    drawn_w = grid_w + gap + bar_w
    figure_w = max(drawn_w + bar_text + 2 * margin, round(5.5 * DPI))  # room for a short grid's title
    if names:
        what = "each class's template"
    elif shown < total:
        what = f"{unit}s 0-{shown - 1} of {total}, row by row"
    else:
        what = f"all {total} {unit}s, row by row"
    key = "mid grey 0, a channel brighter where +" if colour else "red +, blue -, white 0"
    title = f"first layer {layer}: {what}\none colour scale: {key}"  # short: each glyph costs
    title = wrap_title("\n".join(filter(None, [headline, title])), figure_w / DPI, TITLE_PT)
    title_px = round((0.2 + TITLE_PT / 72 * 1.25 * (title.count("\n") + 1)) * DPI)
    figure_h = margin + grid_h + title_px
    figure = new_figure(figsize=(figure_w / DPI, figure_h / DPI), dpi=DPI)
    left = (figure_w - drawn_w - bar_text) // 2
    figure.add_artist(_pixels(grid, left, margin, "weights"))
    for index, name in enumerate(names or []):  # above its tile
        row, column = divmod(index, columns)
        x, y = left + column * cell_w + width / 2, margin + grid_h - row * cell_h - top + 0.05 * height
        figure.text(x / figure_w, y / figure_h, name, ha="center", va="bottom", fontsize=WEIGHT_LABEL_PT,
                    parse_math=False, gid="template name")  # fmt: skip
    # the colour bar, right of the grid, as tall as the grid up to 400 pixels: +scale at the top
    bar_h = min(grid_h, 400)
    x0, y0 = left + grid_w + gap, margin + (grid_h - bar_h) // 2
    bar = colours(np.linspace(1.0, 0.0, bar_h)[:, None], bytes=True).repeat(bar_w, axis=1)
    figure.add_artist(_pixels(bar, x0, y0, "colour bar"))
    for value, y in ((scale, y0 + bar_h), (0.0, y0 + bar_h / 2), (-scale, y0)):
        figure.text((x0 + bar_w + 6) / figure_w, y / figure_h, f"{value:.3g}", va="center", fontsize=9,
                    gid="colour bar tick")  # fmt: skip
    label = "each channel's weight" if colour else "weight"
    figure.text((x0 + bar_w + 60) / figure_w, (y0 + bar_h / 2) / figure_h, label, va="center",
                rotation=90, fontsize=10, gid="colour bar label")  # fmt: skip
    title_figure(figure, title, TITLE_PT, y=1 - 8 / figure_h, va="top")
    return save_png(figure, path)


def _pixels(rgba: np.ndarray, left: int, bottom: int, gid: str) -> Any:
    """An artist that copies `rgba` (H, W, 4 bytes, top row first) onto the figure at whole pixels, its
    lower left corner at (`left`, `bottom`): matplotlib's images resample and mask even at 1:1. Laid out
    for the figure's own DPI, at which save_png writes it."""
    from matplotlib.artist import Artist

    class Pixels(Artist):
        def __init__(self) -> None:
            super().__init__()
            self.rgba = rgba  # what a test reads back
            self._flipped = np.ascontiguousarray(rgba[::-1])  # Agg's rows go up from the bottom

        def draw(self, renderer: Any) -> None:
            gc = renderer.new_gc()
            renderer.draw_image(gc, left, bottom, self._flipped)
            gc.restore()

    artist = Pixels()
    artist.set_gid(gid)
    return artist


FIT_PANEL_IN = 3.8  # each panel of fit.png: a square, inches


def below_zero(truth: np.ndarray, predicted: np.ndarray) -> int | None:
    """How many predictions fall below 0 where no true value does (a weight, a price); None when some
    true value is below 0 itself, so 0 is no boundary."""
    # a fish of 0 g comes back from its float32 z-score as -0.00003 g: still 0
    rounding = 1e-5 * float(np.max(np.abs(truth))) if truth.size else 0.0
    if truth.size == 0 or float(np.min(truth)) < -rounding:
        return None
    return int(np.sum(predicted < -rounding))


def _zero_line(axis: Any, name: str, low: float) -> None:
    """0 drawn, and what lies below it shaded, where no true value is below 0 but a prediction is."""
    axis.axhspan(low, 0, color="tab:red", alpha=0.07, linewidth=0)
    axis.axhline(0, color="tab:red", linewidth=1.2, label=f"0: no true {name} is below it")


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
    baseline's predictions beside the network's; with a single feature, also the fitted curve.

    In whatever units it is given (views.py gives the data file's own): both axes share their limits,
    which take in every prediction, so a fish predicted at -254 g shows below the red line at 0."""
    panels = 2 if curve is not None else 1
    left, between, right, bottom, above = 0.85, 0.95, 0.25, 0.6, 0.75  # inches around the panels
    width = left + panels * FIT_PANEL_IN + (panels - 1) * between + right
    lines = wrap_title(headline, width, TITLE_PT).count("\n") + 1 if headline else 0
    height = bottom + FIT_PANEL_IN + above + (0.1 + lines * TITLE_PT / 72 * 1.25 if lines else 0.0)
    figure = new_figure(figsize=(width, height))
    true, network = np.asarray(targets, float).reshape(-1), np.asarray(predicted, float).reshape(-1)
    baseline = None if least_squares is None else np.asarray(least_squares, float).reshape(-1)
    everything = np.concatenate([true, network] + ([baseline] if baseline is not None else []))
    low, high = float(everything.min()), float(everything.max())
    pad = 0.05 * (high - low or 1.0)
    limits = (low - pad, high + pad)  # the same on both axes: the diagonal at 45 degrees
    axis = figure.add_axes((left / width, bottom / height, FIT_PANEL_IN / width, FIT_PANEL_IN / height))
    below = below_zero(true, everything[len(true) :])
    if below is not None and low < 0:
        _zero_line(axis, target_name, limits[0])
    # hollow circles, so a least-squares cross on the same spot (a linear model's answer) stays visible
    axis.scatter(true, network, s=28, facecolors="none", edgecolors="tab:blue", label="network", zorder=3)
    if baseline is not None:
        axis.scatter(true, baseline, s=22, marker="x", color="tab:orange", label="least squares", zorder=4)
    axis.plot(limits, limits, color="grey", linestyle="--", linewidth=1, label="perfect fit")
    axis.set(xlim=limits, ylim=limits, xlabel=f"true {target_name}", ylabel=f"predicted {target_name}")
    title = f"{split} rows ({len(true):,})"
    network_below = below_zero(true, network)
    if network_below:
        title += f"\n{network_below} of {len(network):,} predicted below 0 by the network"
    axis.set_title(title, fontsize=TITLE_PT)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=9, loc="upper left")
    if curve is not None:
        x = left + FIT_PANEL_IN + between
        axis = figure.add_axes((x / width, bottom / height, FIT_PANEL_IN / width, FIT_PANEL_IN / height))
        if split != "train":  # with no test split the rows shown are the training rows themselves
            axis.scatter(curve["train_x"], curve["train_y"], s=10, color="lightgrey", label="training rows")
        axis.scatter(curve["shown_x"], curve["shown_y"], s=18, color="black", label=f"{split} rows")
        axis.plot(curve["grid"], curve["network"], color="tab:blue", linewidth=2, label="network")
        lines_drawn = [curve["network"]]
        if curve.get("least_squares") is not None:
            axis.plot(curve["grid"], curve["least_squares"], color="tab:orange", linestyle="--",
                      label="least squares")  # fmt: skip
            lines_drawn.append(curve["least_squares"])
        truth = np.concatenate([np.ravel(curve["train_y"]), np.ravel(curve["shown_y"])])
        drawn = np.concatenate([np.ravel(line) for line in lines_drawn])
        if below_zero(truth, drawn):
            bottom_y = min(float(drawn.min()), float(truth.min()))
            _zero_line(axis, target_name, bottom_y - 0.05 * (float(truth.max()) - bottom_y or 1.0))
        axis.set(xlabel=curve["feature"], ylabel=target_name)
        axis.set_title("the fit over the data", fontsize=TITLE_PT)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=9)
    if headline:
        title_figure(figure, headline, TITLE_PT, y=1 - 0.08 / height, va="top")
    return save_png(figure, path)
