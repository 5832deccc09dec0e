"""Learning curves as PNGs: one per run folder, and one overlay of many runs for `nnexp-report --plot`;
the learning-rate range test's curve (`lr_find.png`).

matplotlib is imported inside the functions (look/canvas.py: a Figure on its own Agg canvas, no pyplot), so
neither `nnexp --help` nor a run that never plots pays for it; metrics.csv is read with the csv module, since
pandas would add 0.4 s of imports to every run for a file of a few dozen rows.
"""

from __future__ import annotations

import csv
import logging
import math
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nnexp.atomic import write_atomically
from nnexp.errors import first_line
from nnexp.look import train_numbers
from nnexp.look.canvas import colour_map, png_bytes, save_png, subplots
from nnexp.look.curve_panels import draw_inside, few_ticks, inside_panels, panel_axes, set_margins
from nnexp.look.what_ran import headline_of, read_summary

if TYPE_CHECKING:
    from nnexp.train.lr_finder import LrFinderResult

log = logging.getLogger("nnexp")

Metrics = dict[str, list[float]]  # metrics.csv by column; nan where a row has no value

CURVES_FILE = "learning_curves.png"
STEPS_FILE = (
    "steps.csv"  # with trainer.log_every_n_steps: the loss of every Nth step, drawn beside the curves
)
MAIN_METRICS = ("accuracy", "perplexity", "mse")  # the first one a run records is plotted beside the loss


def _pyplot() -> Any:
    """pyplot, for figures drawn outside look/canvas.py (which keeps no global state): prefer canvas's."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def curve_panels(columns: list[str]) -> list[str]:
    """The metrics to plot: loss, then the main metric of the task (accuracy, perplexity or mse)."""
    names = {column.split("_", 1)[1] for column in columns if column.startswith(("train_", "val_"))}
    panels = ["loss"] if "loss" in names else []
    panels += [name for name in MAIN_METRICS if name in names][:1]
    return panels


def read_metrics(path: Path) -> Metrics:
    with open(path, newline="", encoding="utf-8") as file:
        reader = csv.DictReader(file)
        rows = list(reader)
    return {column: [_number(row.get(column)) for row in rows] for column in reader.fieldnames or []}


def _number(text: str | None) -> float:
    try:
        return float(text) if text else math.nan
    except ValueError:
        return math.nan


def _plot_column(axis: Any, metrics: Metrics, column: str, **style: Any) -> None:
    from matplotlib.ticker import MaxNLocator

    axis.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
    # validation may run only every few epochs: plot the epochs that have a value
    points = [
        (epoch, value)
        for epoch, value in zip(metrics.get("epoch", []), metrics.get(column, []), strict=False)
        if not (math.isnan(epoch) or math.isnan(value))
    ]
    if not points:
        return
    epochs, values = zip(*points, strict=True)
    axis.plot(epochs, values, marker="." if len(points) < 30 else None, **style)


def save_learning_curves(run_dir: Path) -> Path | None:
    """<run_dir>/learning_curves.png (`learning_curves_figure`); None when there is nothing to draw."""
    figure = learning_curves_figure(run_dir)
    if figure is None:
        return None
    return save_png(figure, Path(run_dir) / CURVES_FILE)  # drawn once, written whole


def learning_curves_figure(run_dir: Path) -> Any:
    """Loss and the main metric, train vs val, per epoch, with the references summary.json records (chance,
    the classical baseline) as labelled dashed lines and accuracy on [0, 1]; titled with what ran."""
    metrics_path = Path(run_dir) / "metrics.csv"
    if not metrics_path.is_file():
        return None
    metrics = read_metrics(metrics_path)
    panels = run_panels(metrics)
    if not any(metrics.values()) or not panels:  # no rows
        return None
    steps_path = Path(run_dir) / STEPS_FILE
    steps = read_metrics(steps_path) if steps_path.is_file() else {}
    summary = read_summary(Path(run_dir))
    inside = inside_panels(metrics)  # the gradient norms, dead ReLUs and a changing lr: curve_panels.py
    figure, axes = panel_axes(len(panels) + bool(steps.get("step")), len(inside))
    if steps.get("step"):
        _plot_steps(axes[len(panels)], steps)
    for axis, (what, title) in zip(axes[len(axes) - len(inside) :], inside, strict=True):
        draw_inside(axis, metrics, what, title, TITLE_PT)
    for axis, (name, title) in zip(axes, panels, strict=False):
        for label, value, colour in references(summary, name):
            axis.axhline(value, color=colour, linestyle="--", linewidth=1.2, zorder=1, label=label)
        for column, style in train_numbers.curves(metrics, name):  # which train number, said in the legend
            _plot_column(axis, metrics, column, zorder=3, **style)
        axis.set(xlabel="epoch", ylabel=name)
        axis.set_title(title, fontsize=TITLE_PT, y=1.0)  # placed: not moved around the tick labels
        if name == "accuracy":
            axis.set_ylim(0, 1)  # a wobble of 0.097-0.104 must look like what it is: nothing learned
        elif name in ("loss", "perplexity") and _spans_decades(metrics, name):
            axis.set_yscale("log")
        few_ticks(axis)  # after the scale: a log axis gets no minor ticks
        axis.grid(alpha=0.3)
        _literal(axis.legend(fontsize=9))
    lines = title_figure(figure, headline_of(run_dir)).get_text().count("\n") + 1
    set_margins(figure, axes, lines, TITLE_PT, HEADLINE_PT)
    return figure


TITLE_PT = 13  # a panel's title, readable on a projector; the figure's own title is larger
HEADLINE_PT = 14


def run_panels(metrics: Metrics) -> list[tuple[str, str]]:
    """(metric, panel title) for one run's curves; a panel that would repeat another is left out and the
    one kept says so: perplexity is exp(loss), and a regression trained on mse has loss == mse."""
    panels = curve_panels(list(metrics))
    titles = {name: name for name in panels}
    if "loss" in panels and "perplexity" in panels:
        panels.remove("loss")
        titles["perplexity"] = "perplexity = exp(loss), so no loss panel"
    elif "loss" in panels and "mse" in panels and _same(metrics, "loss", "mse"):
        panels.remove("loss")
        titles["mse"] = "mse (the loss), one panel"
    return [(name, titles[name]) for name in panels]


def _same(metrics: Metrics, first: str, second: str) -> bool:
    for split in ("train", "val"):
        one, other = metrics.get(f"{split}_{first}", []), metrics.get(f"{split}_{second}", [])
        if len(one) != len(other) or not all(
            (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-12)
            for a, b in zip(one, other, strict=True)
        ):
            return False
    return True


CHANCE_LIKE = ("chance", "uniform", "mean predictor")  # what knowing nothing scores; drawn grey
CLASSICAL = ("logistic regression", "least squares", "unigram")  # the classical model to beat; green


def references(summary: dict[str, Any], name: str) -> list[tuple[str, float, str]]:
    """(label, value, colour) of the horizontal lines for metric `name`: the chance-like and classical
    baselines of summary.json, on validation where it has them (test, else train, otherwise); a classifier's
    chance accuracy is 1/classes even when no baseline was recorded."""
    found = []
    baselines = [b for b in summary.get("baselines") or [] if isinstance(b, dict)]
    for kind, colour in ((CHANCE_LIKE, "0.4"), (CLASSICAL, "tab:green")):
        for baseline in baselines:
            label = " ".join(str(baseline.get("name", "")).split())[:LEGEND_CHARACTERS]
            if not label.startswith(kind):
                continue
            for split in ("val", "test", "train"):
                value = baseline.get(f"{split}_{name}")
                if _drawable(value, name):
                    found.append((f"{label} ({split}): {value:.3g}", float(value), colour))
                    break
    data = summary.get("data") if isinstance(summary.get("data"), dict) else {}
    classes = data.get("num_outputs")
    unsaid = not any(label.startswith("chance") for label, _, _ in found)
    if name == "accuracy" and unsaid and isinstance(classes, int):  # accuracy: a classifier's column
        found.insert(0, (f"chance (1/{classes}): {1 / classes:.3g}", 1 / max(classes, 1), "0.4"))
    return found


def _drawable(value: Any, name: str) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return False
    return 0 <= value <= 1 if name == "accuracy" else abs(value) < 1e12


def title_figure(figure: Any, text: str, fontsize: float = HEADLINE_PT, **place: Any) -> Any:
    """The figure's title, wrapped to its width: the run's own text, drawn as it is (no TeX: a `$` or
    `\\frac` in an override is a character, and matplotlibrc's text.usetex cannot turn it on)."""
    wrapped = wrap_title(text, figure.get_figwidth(), fontsize)
    return figure.suptitle(wrapped, fontsize=fontsize, parse_math=False, usetex=False, **place)


def wrap_title(text: str, width_in: float, fontsize: float) -> str:
    """`text` broken into lines that fit `width_in` inches at `fontsize` points."""
    import textwrap

    per_line = max(20, int(width_in * 72 / (0.58 * fontsize)))  # characters of this size in a line
    return "\n".join(line for part in text.split("\n") for line in textwrap.wrap(part, per_line) or [""])


def _literal(legend: Any) -> None:
    """A legend's texts drawn as they are: labels hold baseline and run names from the folder."""
    for text in [*legend.get_texts(), legend.get_title()]:
        text.set_parse_math(False)
        text.set_usetex(False)


def _plot_steps(axis: Any, steps: Metrics) -> None:
    """The training loss at every logged optimiser step (steps.csv), where an epoch's mean hides them."""
    axis.plot(steps["step"], steps["loss"], linewidth=0.8, marker="." if len(steps["step"]) < 60 else None)
    axis.set(xlabel="optimiser step", ylabel="loss")
    axis.set_title("training loss per step", fontsize=TITLE_PT)
    losses = [value for value in steps["loss"] if value > 0]
    if len(losses) > 1 and math.log10(max(losses) / min(losses)) > 1.5:
        axis.set_yscale("log")
    axis.grid(alpha=0.3)


MAX_NAMED = 10  # an overlay of up to this many runs names each one, in its own colour
BEST_NAMED = 8  # past that, the first runs given (the report's best) are named; the rest are thin and grey
GREY = "0.6"


def save_overlay(
    runs: list[tuple[str, Path]],
    path: Path,
    warn: Callable[[str], None] = log.warning,
    ranked_by: str | None = None,
) -> Path | None:
    """`overlay_png` written to `path`; None, with a warning and no file written, when it cannot be drawn."""
    data = overlay_png(runs, warn, ranked_by)
    if data is None:
        return None
    return write_atomically(path, data)  # a reader never sees half a picture


def overlay_png(
    runs: list[tuple[str, Path]], warn: Callable[[str], None] = log.warning, ranked_by: str | None = None
) -> bytes | None:
    """The PNG of `overlay_figure`; None when matplotlib cannot draw these curves (values near 1e308 break
    its tick locator), said through `warn`. matplotlib's own warnings (an overflow) go to `warn` in one
    sentence, each once, never as their raw text on the console."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            data: bytes | None = png_bytes(overlay_figure(runs, warn, ranked_by))
        except (ValueError, ArithmeticError, RuntimeError) as error:
            warn(f"the learning curves could not be drawn ({first_line(error)}): a value in metrics.csv is "
                 f"beyond what a plot can scale to; no overlay is drawn")  # fmt: skip
            data = None
    said = "; ".join(dict.fromkeys(first_line(warning.message) for warning in caught))  # each once
    if said and data is not None:
        warn(f"the learning curves were drawn, but may not look right (matplotlib said: {said})")
    return data


def overlay_figure(
    runs: list[tuple[str, Path]], warn: Callable[[str], None] = log.warning, ranked_by: str | None = None
) -> Any:
    """One figure of the curves of many runs: val solid, train dashed, loss and the main metric side by side.

    `runs` come best first, as nnexp-report sorts them (`ranked_by`: the column). Up to MAX_NAMED runs each
    get a colour and their label in the legend; past that the first BEST_NAMED do, and the others are drawn
    thin and grey behind them, the legend saying "+K more in grey" (300 legend entries covered the plot and
    took seconds to place). The legend sits beside the plots, never over them.
    """
    from matplotlib.collections import LineCollection
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    frames, folders = [], []
    for label, run in runs:
        if (run / "metrics.csv").is_file():
            try:
                frames.append((label, read_metrics(run / "metrics.csv")))
                folders.append(run)
            except (OSError, ValueError, csv.Error) as error:  # one damaged run does not hide the others
                warn(f"{run / 'metrics.csv'}: cannot be read ({error}); left out of the plot")
    named = frames if len(frames) <= MAX_NAMED else frames[:BEST_NAMED]
    greyed = frames[len(named) :]
    panels = curve_panels(sorted({column for _, frame in frames for column in frame}))
    count = max(len(panels), 1)
    figure, axes = subplots(1, count, figsize=(6 * count + 3, 4.2), squeeze=False, layout="constrained")
    tab10 = colour_map("tab10").colors
    colours = [*tab10[:7], *tab10[8:], tab10[7]]  # tab10's grey last: never beside the grey runs
    for axis, name in zip(axes[0], panels, strict=False):
        for split, style in (("val", "-"), ("train", "--")):
            # The grey runs: one collection per panel and split, not a line each (300 lines drew in seconds).
            curves = [_points(frame, f"{split}_{name}") for _, frame in greyed]
            lines = [curve for curve in curves if len(curve) > 1]
            if lines:
                axis.add_collection(LineCollection(lines, colors=GREY, linewidths=0.6, linestyles=style,
                                                   alpha=0.6, zorder=1))  # fmt: skip
            dots = [curve[0] for curve in curves if len(curve) == 1]  # one epoch: a dot, not nothing
            if dots:
                axis.plot(*zip(*dots, strict=True), ".", color=GREY, zorder=1)
        for index, (_, frame) in enumerate(named):
            colour = colours[index % len(colours)]
            for split, style, alpha in (("val", "-", 1.0), ("train", "--", 0.5)):
                points = _points(frame, f"{split}_{name}")
                if points:
                    marker = "." if len(points) < 30 else None
                    epochs, values = zip(*points, strict=True)
                    axis.plot(
                        epochs, values, linestyle=style, color=colour, alpha=alpha, zorder=3, marker=marker
                    )
        if name in ("loss", "perplexity") and _spans_decades_in(frames, name):  # e.g. a diverged run's
            axis.set_yscale("log")
        axis.autoscale_view()
        if name == "accuracy":
            axis.set_ylim(0, 1)  # as each run's own curves: a wobble of 0.097-0.104 must look like nothing
        _overlay_references(axis, folders[: len(named)], name)
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
        axis.set(xlabel="epoch", ylabel=name, title=f"{name} (val solid, train dashed)")
        axis.grid(alpha=0.3)
    handles, labels = [], []
    for index, (label, frame) in enumerate(named):
        solid = any(_points(frame, f"val_{name}") for name in panels)
        handles.append(Line2D([], [], color=colours[index % len(colours)], linestyle="-" if solid else "--"))
        labels.append(legend_text(label))
    if greyed:
        handles.append(Line2D([], [], color=GREY, linewidth=0.8))
        labels.append(f"+{len(greyed)} more in grey")
    if panels and handles:
        title = f"best {len(named)} by {legend_text(ranked_by)}" if greyed and ranked_by else None
        # 10 pt, legible when projected; beside the plots, never on the curves, however many runs
        legend = figure.legend(handles, labels, loc="outside right upper", fontsize=10, title=title,
                               title_fontsize=10)  # fmt: skip
        for text in [*legend.get_texts(), legend.get_title()]:
            text.set_parse_math(False)  # a `$` in a run's name is a dollar, not TeX (a bad formula raised)
    return figure


def _overlay_references(axis: Any, folders: list[Path], name: str) -> None:
    """The named runs' `references` (chance, the classical baseline), dashed and labelled at their right end,
    each at its median over the runs (a baseline's score moves with a run's data split)."""
    from matplotlib.transforms import blended_transform_factory as blended

    found: dict[str, tuple[list[float], str]] = {}
    for label, value, colour in (ref for folder in folders for ref in references(read_summary(folder), name)):
        found.setdefault(label.rsplit(": ", 1)[0], ([], colour))[0].append(value)
    at_right = blended(axis.transAxes, axis.transData)  # x across the axes, y in the data
    for key, (values, colour) in found.items():
        value = sorted(values)[len(values) // 2]
        axis.axhline(value, color=colour, linestyle="--", linewidth=1.2, zorder=2)
        axis.text(0.99, value, f"{key}: {value:.3g}", transform=at_right, ha="right", va="bottom", fontsize=9,
                  color=colour, parse_math=False, usetex=False, bbox={"fc": "w", "ec": "none", "alpha": 0.7})


def _points(metrics: Metrics, column: str) -> list[tuple[float, float]]:
    """(epoch, value) of the epochs that have a value: validation may run only every few epochs."""
    return [
        (epoch, value)
        for epoch, value in zip(metrics.get("epoch", []), metrics.get(column, []), strict=False)
        if not (math.isnan(epoch) or math.isnan(value))
    ]


LEGEND_CHARACTERS = 60


def legend_text(label: str) -> str:
    """A run's label short enough for the legend: hundreds of characters would push the plots off the picture.
    (The legend shows it literally: its texts are drawn with TeX math off, see `_draw_overlay`.)"""
    return label if len(label) <= LEGEND_CHARACTERS else label[: LEGEND_CHARACTERS - 1] + "…"


def _spans_decades_in(frames: list[tuple[str, Metrics]], name: str) -> bool:
    return _spans_decades({f"{split}_{name}": [value for _, frame in frames
                                               for value in frame.get(f"{split}_{name}", [])]
                           for split in ("train", "val")}, name)  # fmt: skip


def _spans_decades(metrics: Metrics, name: str) -> bool:
    columns = [metrics.get(f"{split}_{name}", []) for split in ("train", "val")]
    values = [value for column in columns for value in column if value > 0]  # nan > 0 is False
    return len(values) > 1 and math.log10(max(values) / min(values)) > 1.5


def plot_run(run_dir: Path) -> None:
    """Called at the end of every run: a failed plot is a warning, never a failed run."""
    try:
        save_learning_curves(run_dir)
    except Exception as error:  # the run's records are already written; the picture is a bonus
        log.warning("could not plot the learning curves: %s", error)


def plot_lr_find(result: LrFinderResult, path: Path) -> None:
    """The loss against the lr (log scale), raw and smoothed, with the suggested lr marked."""
    figure, axis = subplots(figsize=(6, 4))
    axis.plot(result.lrs, result.losses, color="tab:blue", alpha=0.3, label="loss")
    axis.plot(result.lrs, result.smoothed_losses, color="tab:blue", label="smoothed loss")
    title = "no learning rate suggested (summary.json says why)"
    if result.suggested_lr is not None:
        lr = result.suggested_lr
        axis.axvline(lr, color="tab:red", linestyle="--", linewidth=1)
        at = result.lrs.index(lr)
        axis.plot([lr], [result.smoothed_losses[at]], "o", color="tab:red", label="suggested")
        title = f"suggested lr {lr:.1e}: {result.suggestion.reason}"
    if result.smoothed_losses:
        # The last steps may have exploded; keep the descent readable.
        low, high = min(result.losses), max(result.smoothed_losses[0], 2 * min(result.smoothed_losses))
        if high > low:
            axis.set_ylim(low - 0.05 * (high - low), high + 0.05 * (high - low))
    axis.set_xscale("log")
    axis.set(xlabel="learning rate", ylabel="training loss")
    axis.set_title(title, fontsize=12)
    axis.grid(alpha=0.3, which="both")
    axis.legend()
    title_figure(figure, headline_of(Path(path).parent))
    figure.tight_layout()
    save_png(figure, path)


__all__ = [
    "BEST_NAMED",
    "CURVES_FILE",
    "MAX_NAMED",
    "learning_curves_figure",
    "legend_text",
    "overlay_figure",
    "overlay_png",
    "plot_lr_find",
    "plot_run",
    "references",
    "run_panels",
    "save_learning_curves",
    "save_overlay",
    "title_figure",
    "wrap_title",
]
