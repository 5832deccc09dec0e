"""Learning curves as PNGs: one per run folder, and one overlay of many runs for `nnexp-report --plot`;
the learning-rate range test's curve (`lr_find.png`).

matplotlib is imported inside the functions (with the Agg backend, no display needed), so neither
`nnexp --help` nor a run that never plots pays for it; metrics.csv is read with the csv module, since
pandas would add 0.4 s of imports to every run for a file of a few dozen rows.
"""

from __future__ import annotations

import csv
import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
    """<run_dir>/learning_curves.png: loss and the main metric, train vs val, per epoch."""
    metrics_path = Path(run_dir) / "metrics.csv"
    if not metrics_path.is_file():
        return None
    metrics = read_metrics(metrics_path)
    panels = curve_panels(list(metrics))
    if not any(metrics.values()) or not panels:  # no rows
        return None
    steps_path = Path(run_dir) / STEPS_FILE
    steps = read_metrics(steps_path) if steps_path.is_file() else {}
    columns = len(panels) + bool(steps.get("step"))
    plt = _pyplot()
    figure, axes = plt.subplots(1, columns, figsize=(5 * columns, 3.6), squeeze=False)
    if steps.get("step"):
        _plot_steps(axes[0][-1], steps)
    for axis, name in zip(axes[0], panels, strict=False):
        for split, style in (("train", "--"), ("val", "-")):
            _plot_column(axis, metrics, f"{split}_{name}", linestyle=style, label=split)
        axis.set(xlabel="epoch", ylabel=name, title=name)
        if name in ("loss", "perplexity") and _spans_decades(metrics, name):
            axis.set_yscale("log")
        axis.grid(alpha=0.3)
        axis.legend()
    figure.suptitle(Path(run_dir).name, fontsize=9)
    figure.tight_layout()
    path = Path(run_dir) / CURVES_FILE
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def _plot_steps(axis: Any, steps: Metrics) -> None:
    """The training loss at every logged optimiser step (steps.csv), where an epoch's mean hides them."""
    axis.plot(steps["step"], steps["loss"], linewidth=0.8, marker="." if len(steps["step"]) < 60 else None)
    axis.set(xlabel="optimiser step", ylabel="loss", title="training loss per step")
    losses = [value for value in steps["loss"] if value > 0]
    if len(losses) > 1 and math.log10(max(losses) / min(losses)) > 1.5:
        axis.set_yscale("log")
    axis.grid(alpha=0.3)


def save_overlay(runs: list[tuple[str, Path]], path: Path, warn: Callable[[str], None] = log.warning) -> Path:
    """One PNG with the curves of many runs: a colour per run (its label), val solid, train dashed."""
    frames = []
    for label, run in runs:
        if (run / "metrics.csv").is_file():
            try:
                frames.append((label, read_metrics(run / "metrics.csv")))
            except (OSError, ValueError, csv.Error) as error:  # one damaged run does not hide the others
                warn(f"{run / 'metrics.csv'}: cannot be read ({error}); left out of the plot")
    columns = sorted({column for _, frame in frames for column in frame})
    panels = curve_panels(columns)
    plt = _pyplot()
    figure, axes = plt.subplots(1, max(len(panels), 1), figsize=(6 * max(len(panels), 1), 4.2), squeeze=False)
    colours = plt.get_cmap("tab10" if len(frames) <= 10 else "tab20")
    for index, (label, frame) in enumerate(frames):
        colour = colours(index % colours.N)
        for axis, name in zip(axes[0], panels, strict=False):
            _plot_column(axis, frame, f"val_{name}", color=colour, label=label)
            has_val = any(not math.isnan(value) for value in frame.get(f"val_{name}", []))
            _plot_column(axis, frame, f"train_{name}", color=colour, linestyle="--", alpha=0.5,
                         label=None if has_val else label)  # fmt: skip
    for axis, name in zip(axes[0], panels, strict=False):
        axis.set(xlabel="epoch", ylabel=name, title=f"{name} (val solid, train dashed)")
        axis.grid(alpha=0.3)
    if panels:
        axes[0][-1].legend(fontsize=8, loc="best")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


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
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6, 4))
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
    axis.set_title(title, fontsize=10)
    axis.grid(alpha=0.3, which="both")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


__all__ = ["CURVES_FILE", "plot_lr_find", "plot_run", "save_learning_curves", "save_overlay"]
