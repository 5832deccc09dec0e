"""What a small network learns, drawn in the data's own space: decision_boundary.png and training.gif.

decision_boundary.png (classification of two input features): the trained model's predicted class over a
grid covering the data, paler where it is less sure, the boundary between classes as a line, and the
training points on top. training.gif: the same picture on the epochs runs/snapshots.py kept during
training (for regression of one feature: the fitted curve), one frame each, so a lecture can show the
boundary bending into shape. The frames are drawn from one figure: the axes, title and legend are drawn
once, and each frame redraws only the grid, the points and its label (matplotlib's blitting), a few
milliseconds a frame; Pillow writes the GIF. Figures are drawn on their own canvas (look/canvas.py, no
pyplot), with margins set in inches rather than measured by tight_layout (which laid each figure out twice).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from nnexp.atomic import write_atomically
from nnexp.data import DataSpec
from nnexp.look.canvas import DPI, colour_map, new_figure, save_png, subplots
from nnexp.look.figures import TITLE_PT
from nnexp.look.plots import title_figure
from nnexp.look.predictions import class_names
from nnexp.runs.snapshots import (
    SNAPSHOTS_FILE,
    boundary_of,
    grid_axes,
    grid_inputs,
    outputs_on,
    read_snapshots,
    watched,
)

BOUNDARY_PLOT = "decision_boundary.png"
TRAINING_GIF = "training.gif"
FRAME_MS = 250  # each frame of training.gif
LAST_FRAME_MS = 2000  # the trained model's frame stays up a while before the loop starts again
PICTURE_GRID = 150  # decision_boundary.png's grid, finer than the animation's: drawn once
GIF_DPI = 80  # 512 x 448 px: small files, still legible on a slide
FIGURE_INCHES = (6.4, 5.6)  # the curve's; a plane's height follows its data's aspect (`_plane_inches`)
PLANE_WIDTH = 6.4  # inches
TITLES_INCHES = 1.5  # the headline and the axes' title above a plane, its labels below
COLOURS = "colour: the predicted class; paler: less sure"
PALE, DEEP = 0.15, 0.7  # the class colour's share of a grid point, unsure to sure
# Margins in inches for the tick and axis labels left and below and the axes' title above, the layout
# tight_layout found for these figures
# (a plane's two lines at 10 pt, the curve's one at 9 pt, with its pad); the run's headline goes above that.
PLANE_MARGINS = {"left": 0.78, "right": 0.26, "bottom": 0.55, "top": 0.52}
CURVE_MARGINS = {"left": 0.62, "right": 0.15, "bottom": 0.5, "top": 0.36}


def class_colours(count: int) -> np.ndarray:
    """(count, 3) RGB in [0, 1]: matplotlib's tab10, repeated past ten classes."""
    return np.asarray(colour_map("tab10").colors)[np.arange(count) % 10]


def field_image(classes: np.ndarray, sure: np.ndarray, count: int) -> np.ndarray:
    """(rows, columns, 3) the grid's colours: each point its predicted class's colour, paler the nearer
    its probability is to guessing (1 / classes)."""
    guess = 1.0 / max(count, 2)
    strength = np.clip((sure / 255.0 - guess) / (1.0 - guess), 0.0, 1.0)
    share = (PALE + (DEEP - PALE) * strength)[..., None]
    return 1.0 - share * (1.0 - class_colours(count)[classes])


def _plane(
    axes: list[np.ndarray], title: str, headline: str, dpi: int, animated: bool = False
) -> dict[str, Any]:
    """The figure of a boundary picture: the grid's image (blank until set) and the axes' title (the
    frame's label when animated); the points go on top with `_draw_points`."""
    extent = (axes[0][0], axes[0][-1], axes[1][0], axes[1][-1])
    figure, axis = subplots(figsize=_plane_inches(extent), dpi=dpi)
    blank = np.ones((len(axes[1]), len(axes[0]), 3))
    image = axis.imshow(
        blank, extent=extent, origin="lower", interpolation="bilinear", aspect="equal", animated=animated
    )
    axis.set(xlim=extent[:2], ylim=extent[2:], xlabel="x1", ylabel="x2")
    label = axis.set_title(title, fontsize=10)  # two lines, as each frame's will be: the margin keeps room
    label.set_animated(animated)
    _set_margins(figure, PLANE_MARGINS, headline)  # the equal-aspect axes sit centred in what is left
    return {"figure": figure, "axis": axis, "image": image, "label": label}


def _draw_points(axis: Any, points: np.ndarray, targets: np.ndarray, names: list[str]) -> None:
    """The training points in their class's colour, and the legend that names the classes."""
    colours = class_colours(len(names))
    axis.scatter(points[:, 0], points[:, 1], c=colours[targets], s=14, edgecolors="black", linewidths=0.4)
    for number, name in enumerate(names):  # the legend's entries; the points themselves are one artist
        axis.scatter([], [], color=colours[number], edgecolors="black", linewidths=0.4, label=f"class {name}")
    legend = axis.legend(loc="upper right", fontsize=8, framealpha=0.85, title="training points")
    legend.get_title().set_fontsize(8)


def _points_layer(drawn: dict[str, Any], points: np.ndarray, targets: np.ndarray, names: list[str]) -> Any:
    """(height, width, 4) floats: the points, legend and frame of `drawn`'s axes alone on a transparent
    figure of the same size, drawn once and laid over every frame (redrawing 1,000 points a frame took
    most of the animation's time)."""
    figure, axis = drawn["figure"], drawn["axis"]
    layer = new_figure(figsize=figure.get_size_inches(), dpi=figure.dpi)
    layer.patch.set_alpha(0.0)
    over = layer.add_axes(axis.get_position())  # where the equal-aspect axes ended up once drawn
    over.patch.set_alpha(0.0)
    over.set(xlim=axis.get_xlim(), ylim=axis.get_ylim(), xticks=[], yticks=[])
    _draw_points(over, points, targets, names)
    layer.canvas.draw()
    return np.asarray(layer.canvas.buffer_rgba(), dtype=np.float32) / 255.0


def _plane_inches(extent: tuple[float, ...]) -> tuple[float, float]:
    """(width, height): the plane drawn to scale (one unit of x1 as long as one of x2), within bounds."""
    aspect = (extent[3] - extent[2]) / max(extent[1] - extent[0], 1e-9)
    return PLANE_WIDTH, min(max(PLANE_WIDTH * 0.85 * aspect, 2.5), 7.0) + TITLES_INCHES


def _set_margins(figure: Any, margins: dict[str, float], headline: str) -> None:
    """The run's headline over the figure, and the axes' margins in inches, room for it included."""
    width, height = figure.get_size_inches()
    top = margins["top"]
    if headline:  # placed at 98% of the height, its lines 1.2 times its size apart
        lines = title_figure(figure, headline, TITLE_PT).get_text().count("\n") + 1
        top += 0.02 * height + lines * 1.2 * TITLE_PT / 72
    figure.subplots_adjust(left=margins["left"] / width, right=1 - margins["right"] / width,
                           bottom=margins["bottom"] / height, top=1 - top / height)  # fmt: skip


def save_decision_boundary(model: Any, data: Any, path: Path, headline: str = "") -> Path:
    """decision_boundary.png of the model as it is now, over the data's grid."""
    axes = grid_axes(data, "boundary", PICTURE_GRID)
    grid = grid_inputs(axes).to(data.train.inputs.device)
    outputs = outputs_on(model, grid)
    classes, sure = boundary_of(outputs, len(axes[0]))
    names = class_names(data.spec)
    points = data.train.inputs.float().cpu().numpy()
    targets = data.train.targets.cpu().numpy()
    right = float((outputs_on(model, data.train.inputs).argmax(axis=1) == targets).mean())
    title = f"the decision boundary after training · train accuracy {right:.3f}\n{COLOURS}"
    drawn = _plane(axes, title, headline, DPI)
    drawn["image"].set_data(field_image(classes, sure, len(names)))
    _draw_points(drawn["axis"], points, targets, names)
    if np.unique(classes).size > 1:
        # two classes: where the probabilities are even, a smooth line; more: between the class regions
        field, levels = classes, np.arange(len(names) - 1) + 0.5
        if outputs.shape[1] == 2:
            field, levels = (outputs[:, 1] - outputs[:, 0]).reshape(classes.shape), [0.0]
        xs, ys = np.meshgrid(axes[0], axes[1])
        drawn["axis"].contour(xs, ys, field, levels=levels, colors="black", linewidths=1.2, zorder=0.5)
    return save_png(drawn["figure"], path)  # drawn once, written whole


def save_training_gif(snapshots_path: Path, spec: DataSpec, path: Path, headline: str = "") -> Path | None:
    """training.gif from snapshots.npz: one frame per snapshot; None when it holds fewer than two."""
    saved = read_snapshots(snapshots_path)
    if len(saved["epochs"]) < 2:
        return None
    if saved["kind"] == "boundary":
        frames = _boundary_frames(saved, spec, headline)
    else:
        frames = _curve_frames(saved, spec, headline)
    from PIL import Image

    pictures = [Image.fromarray(frame).convert("RGB") for frame in frames]
    # one palette for every frame, from the first, middle and last together: the pale early colours and
    # the deep late ones both get their shades, and nothing flickers between frames
    sampled = Image.fromarray(np.concatenate([frames[0], frames[len(frames) // 2], frames[-1]]))
    palette = sampled.convert("RGB").quantize(colors=255, method=Image.Quantize.MEDIANCUT)
    frames_p = [picture.quantize(palette=palette, dither=Image.Dither.NONE) for picture in pictures]
    durations = [FRAME_MS] * (len(frames_p) - 1) + [LAST_FRAME_MS]
    buffer = io.BytesIO()
    frames_p[0].save(
        buffer, format="GIF", save_all=True, append_images=frames_p[1:], duration=durations, loop=0
    )
    write_atomically(path, buffer.getvalue(), durable=False)
    return path


def _frame_label(epoch: int, last: int, metric: str, score: float) -> str:
    stage = "before training" if epoch == 0 else f"epoch {epoch} of {last}"
    return f"{stage} · train {metric} {score:.3f}"


def _blitted(
    drawn: dict[str, Any], moving: list[Any], update: Any, count: int, layer: Any = None
) -> list[np.ndarray]:
    """`count` frames of the figure: the still parts drawn once, then per frame `update(index)` and the
    moving artists drawn over a copy of them, and `layer` (RGBA floats) laid over all."""
    figure, axis = drawn["figure"], drawn["axis"]
    canvas = figure.canvas
    canvas.draw()  # everything but the animated artists
    still = canvas.copy_from_bbox(figure.bbox)
    if layer is not None:  # the layer's share of every frame, worked out once
        keep, over = 1.0 - layer[..., 3:], layer[..., :3] * (255.0 * layer[..., 3:])
    frames = []
    for index in range(count):
        canvas.restore_region(still)
        update(index)
        for artist in moving:
            axis.draw_artist(artist)
        frame = np.asarray(canvas.buffer_rgba())[..., :3]
        if layer is not None:
            frame = frame * keep + over
        frames.append(np.round(frame).astype(np.uint8))
    return frames


def _boundary_frames(saved: dict[str, Any], spec: DataSpec, headline: str) -> list[np.ndarray]:
    names = class_names(spec)
    widest = _frame_label(999, 999, saved["metric"], 0.0)
    drawn = _plane(saved["axes"], f"{widest}\n{COLOURS}", headline, GIF_DPI, animated=True)
    classes, sure, epochs = saved["frames"]["classes"], saved["frames"]["sure"], saved["epochs"]
    layer = _points_layer(drawn, saved["points"], saved["targets"], names)

    def update(index: int) -> None:
        drawn["image"].set_data(field_image(classes[index], sure[index], len(names)))
        label = _frame_label(int(epochs[index]), int(epochs[-1]), saved["metric"], saved["scores"][index])
        drawn["label"].set_text(f"{label}\n{COLOURS}")

    return _blitted(drawn, [drawn["image"], drawn["label"]], update, len(epochs), layer)


def _curve_frames(saved: dict[str, Any], spec: DataSpec, headline: str) -> list[np.ndarray]:
    """A regression of one feature: the training points and the network's curve on each snapshot."""
    figure, axis = subplots(figsize=FIGURE_INCHES, dpi=GIF_DPI)
    x, curves, epochs = saved["axes"][0], saved["frames"]["curve"], saved["epochs"]
    points, targets = saved["points"].reshape(-1), saved["targets"].reshape(-1)
    axis.scatter(points, targets, s=12, color="black", alpha=0.6, label="training rows")
    (line,) = axis.plot(x, curves[0], color="tab:blue", linewidth=2.5, label="network", animated=True)
    label = axis.text(0.02, 0.95, "", transform=axis.transAxes, fontsize=11, animated=True, va="top")
    values = np.concatenate([targets, curves[-1]])
    low, high = float(np.nanmin(values)), float(np.nanmax(values))
    pad = 0.15 * max(high - low, 1e-6)
    axis.set(xlim=(x[0], x[-1]), ylim=(low - pad, high + pad))
    features, target = spec.details.get("features") or ["x"], spec.details.get("target", "y")
    axis.set(xlabel=str(features[0]), ylabel=str(target))
    axis.set_title("the fit as it trains", fontsize=9)
    axis.grid(alpha=0.3)
    axis.legend(loc="lower right", fontsize=8)
    _set_margins(figure, CURVE_MARGINS, headline)

    def update(index: int) -> None:
        line.set_ydata(curves[index])
        label.set_text(
            _frame_label(int(epochs[index]), int(epochs[-1]), saved["metric"], saved["scores"][index])
        )

    drawn = {"figure": figure, "axis": axis}
    return _blitted(drawn, [line, label], update, len(epochs))


def boundary_views(experiment: Any, run_dir: Path, headline: str) -> list[tuple[str, Any]]:
    """[(file name, a function that draws it)] for what this run has: decision_boundary.png for two
    features and classes, training.gif wherever runs/snapshots.py kept frames."""
    spec = experiment.data.spec
    views: list[tuple[str, Any]] = []
    if watched(spec) == "boundary":
        path = run_dir / BOUNDARY_PLOT
        model, data = experiment.model, experiment.data
        views.append((BOUNDARY_PLOT, lambda: save_decision_boundary(model, data, path, headline)))
    if (run_dir / SNAPSHOTS_FILE).is_file():
        gif = run_dir / TRAINING_GIF
        snapshots = run_dir / SNAPSHOTS_FILE
        views.append((TRAINING_GIF, lambda: save_training_gif(snapshots, spec, gif, headline)))
    return views
