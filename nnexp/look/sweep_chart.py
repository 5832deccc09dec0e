"""The sweep chart (`sweep_chart.png`, `nnexp-report --plot/--html`): each headline final metric against each
swept value, the mean over the runs that differ only in their seed (or fold), bars from the lowest to the
highest of them.

x is the swept value: a number axis when every value is a number (a log axis when they are all above 0
and span 2 decades or more, as learning rates do), else one place per value in the order swept. y is the
final metric as nnexp-report's table shows it (test_accuracy and test_loss, or val_* without a test split).
Runs that did not complete (failed, diverged, interrupted) are left out of the means and named in the
caption. `sweep_chart()` returns the numbers drawn, so a test reads them back without reading pixels.

Every value comes from a run folder (untrusted): it is drawn as text, never as TeX.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from nnexp.look.groups import BASELINE_COLUMN, settings_of

CHART_FILE = "sweep_chart.png"
MAIN_METRICS = ("accuracy", "perplexity", "mse")  # the headline metric: the first of these a run records
SPLITS = ("test", "val", "train")  # the final metric of the first split the runs evaluated
MAX_KEYS = 3  # swept keys charted (a row of panels each); more are named in the caption, not drawn
MAX_SERIES = 8  # lines per panel: one per setting of the other swept keys
LOG_DECADES = 2  # values above 0 spanning this many decades get a log axis
DEFAULT = "(default)"  # the value of a key a run did not override
COLOURS = ("tab:blue", "tab:orange", "tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan",
           "tab:red")  # green is the baseline's  # fmt: skip
MAX_TICKS = 8  # up to this many values swept, each is a tick labelled as typed
NAMED_LEFT_OUT = 10  # runs named in the caption; past that, a count


@dataclass
class Series:
    """One line of a panel: the runs sharing one setting of the other swept keys (`label` "" when none)."""

    label: str
    setting: list[str] = field(default_factory=list)  # the other swept keys' values, as Panel.others
    x: list[str] = field(default_factory=list)  # the swept values, as typed
    mean: list[float] = field(default_factory=list)
    low: list[float] = field(default_factory=list)  # the lowest run's value (the bar's bottom)
    high: list[float] = field(default_factory=list)
    runs: list[int] = field(default_factory=list)  # completed runs averaged at each x


@dataclass
class Panel:
    metric: str  # a column of the table, "test_accuracy"
    key: str  # the swept override, "optim.lr"
    values: list[str]  # its values, in the order swept
    scale: str  # "log", "linear" or "categorical"
    series: list[Series]
    others: list[str] = field(default_factory=list)  # the other swept keys: a line per setting of them
    baseline: tuple[str, float] | None = None  # (name, value) of the table's baseline for this metric
    hidden_series: int = 0  # settings of the other keys past MAX_SERIES, not drawn


@dataclass
class SweepChart:
    panels: list[Panel]
    completed: int  # runs in the means
    left_out: list[tuple[str, str]]  # (run, status) of the runs that did not complete
    keys_not_drawn: list[str] = field(default_factory=list)

    @property
    def caption(self) -> str:
        """What the chart shows and leaves out, for the page and the figure's title."""
        text = (f"{', '.join(dict.fromkeys(p.metric for p in self.panels))} against the swept values: the "
                f"mean over the runs that differ only in their seed (or fold), bars from the lowest to the "
                f"highest of them; {self.completed} completed runs")  # fmt: skip
        if self.left_out:
            named = [f"{run} ({status})" for run, status in self.left_out[:NAMED_LEFT_OUT]]
            more = len(self.left_out) - len(named)
            text += f"; {len(self.left_out)} left out, as they did not complete: {', '.join(named)}"
            text += f" and {more} more" if more else ""
        if self.keys_not_drawn:
            text += f"; not charted (past {MAX_KEYS} swept keys): {', '.join(self.keys_not_drawn)}"
        hidden = sum(panel.hidden_series for panel in self.panels)
        if hidden:
            text += f"; {hidden} settings of the other keys not drawn (past {MAX_SERIES} lines a panel)"
        return text


# Runs that differ in these learned from other data (outputs/ holding several experiments): a fish MSE and
# a digits cross-entropy on one axis would compare nothing.
OTHER_DATA = {"experiment", "data", "data.path", "data.target"}


def sweep_chart(table: pd.DataFrame, differing: list[str]) -> SweepChart | None:
    """The numbers of the chart of nnexp-report's `table` (one row per run, the `differing` overrides as
    columns); None when nothing but the seed or fold was swept, when the runs learned from different data
    (OTHER_DATA), or when no completed run has a final metric."""
    keys = [key for key in settings_of(differing) if table[key].nunique(dropna=False) > 1]
    if len(table) < 2 or not keys or set(keys) & OTHER_DATA:
        return None
    table = table.iloc[sorted(range(len(table)), key=lambda i: _job_order(str(table["run"].iloc[i])))]
    done = table["status"] == "completed"
    completed = table[done]
    metrics = headline_metrics(completed)
    panels = [_panel(completed, metric, key, [k for k in keys if k != key]) for metric in metrics
              for key in keys[:MAX_KEYS]]  # fmt: skip
    panels = [panel for panel in panels if any(series.x for series in panel.series)]
    if not panels:
        return None
    left_out = [(str(row["run"]), str(row["status"])) for _, row in table[~done].iterrows()]
    return SweepChart(panels, int(done.sum()), left_out, keys[MAX_KEYS:])


def headline_metrics(table: pd.DataFrame) -> list[str]:
    """At most two final metrics of one split: the task's main one (accuracy, perplexity, mse) and the
    loss, unless the loss is that metric (a regression trained on mse)."""
    for split in SPLITS:
        columns = [f"{split}_{name}" for name in (*MAIN_METRICS, "loss")]
        found = [column for column in columns if _has_values(table, column)]
        main = [column for column in found if not column.endswith("_loss")][:1]
        loss = [column for column in found if column.endswith("_loss")]
        if main and loss and _same(table, main[0], loss[0]):
            loss = []
        if main or loss:
            return [*main, *loss]
    return []


def _has_values(table: pd.DataFrame, column: str) -> bool:
    return column in table and pd.api.types.is_numeric_dtype(table[column]) and table[column].notna().any()


def _same(table: pd.DataFrame, one: str, other: str) -> bool:
    pairs = table[[one, other]].dropna()
    return not pairs.empty and all(math.isclose(a, b, rel_tol=1e-5) for a, b in pairs.itertuples(index=False))


def _job_order(run: str) -> list[Any]:
    """Hydra's job numbers in numeric order ("2" before "10"): the order the values were swept."""
    parts = [part for part in re.split(r"(\d+)", run) if part]
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in parts]


def _panel(table: pd.DataFrame, metric: str, key: str, others: list[str]) -> Panel:
    values = list(dict.fromkeys(_shown(value) for value in table[key]))
    scale = axis_scale(values)
    if scale != "categorical":  # a number axis: the points left to right
        values = sorted(values, key=float)
    series: list[Series] = []
    settings = [tuple(_shown(row[other]) for other in others) for _, row in table.iterrows()]
    frame = table.assign(_x=[_shown(value) for value in table[key]], _series=settings)
    labels = list(dict.fromkeys(settings))
    for setting in labels[:MAX_SERIES]:
        label = " ".join(f"{other}={value}" for other, value in zip(others, setting, strict=True))
        line = Series(label, list(setting))
        rows = frame[frame["_series"] == setting]
        for value in values:
            scores = pd.to_numeric(rows.loc[rows["_x"] == value, metric], errors="coerce").dropna()
            scores = scores[scores.map(math.isfinite)]
            if scores.empty:
                continue
            line.x.append(value)
            line.mean.append(float(scores.mean()))
            line.low.append(float(scores.min()))
            line.high.append(float(scores.max()))
            line.runs.append(len(scores))
        series.append(line)
    hidden = max(0, len(labels) - MAX_SERIES)
    return Panel(metric, key, values, scale, series, others, _baseline(table, metric), hidden)


def _shown(value: Any) -> str:
    text = "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)
    return text or DEFAULT


def axis_scale(values: list[str]) -> str:
    """The x axis of these values: `log` for numbers above 0 spanning LOG_DECADES decades or more,
    `linear` for other numbers, `categorical` when any is not a finite number (`adam`, `[64,32]`, `true`,
    the default) or when 0 stands beside numbers spanning decades (`0,1e-4,1e-3,1e-2`)."""
    numbers = []
    for value in values:
        try:
            number = float(value)
        except ValueError:
            return "categorical"
        if not math.isfinite(number):
            return "categorical"
        numbers.append(number)
    above = [number for number in numbers if number > 0]
    spans_decades = len(above) > 1 and math.log10(max(above) / min(above)) >= LOG_DECADES
    if spans_decades and len(above) == len(numbers):
        return "log"
    if spans_decades:  # 0 (or less) beside 1e-4..1e-2 (weight decay): a linear axis piles them at 0
        return "categorical"
    return "linear"


def _baseline(table: pd.DataFrame, metric: str) -> tuple[str, float] | None:
    """The strongest baseline of the table's runs for this very metric: the median over the runs (its
    data split, and so its score, may move with the seed), when the runs name one baseline."""
    column = f"baseline_{metric}"
    if column not in table or BASELINE_COLUMN not in table:
        return None
    values = pd.to_numeric(table[column], errors="coerce").dropna()
    names = set(table.loc[values.index, BASELINE_COLUMN].dropna().astype(str))
    if values.empty or len(names) != 1:
        return None
    return names.pop(), float(values.median())


# ---- drawing --------------------------------------------------------------------------------------------

PT = {"title": 13, "label": 12, "ticks": 11, "legend": 10}  # readable when projected


def chart_figure(chart: SweepChart) -> Any:
    """The panels in a grid: a row per swept key, a column per metric (one key: side by side, a slide)."""
    from nnexp.look.canvas import subplots
    from nnexp.look.plots import title_figure

    metrics = list(dict.fromkeys(panel.metric for panel in chart.panels))
    keys = list(dict.fromkeys(panel.key for panel in chart.panels))
    size = (5.5 * len(metrics) + 0.5, 4.3 * len(keys) + 1.2)
    figure, axes = subplots(len(keys), len(metrics), figsize=size, squeeze=False, layout="constrained")
    for row in axes:
        for axis in row:
            axis.set_visible(False)  # a (metric, key) no completed run has stays blank
    for panel in chart.panels:
        axis = axes[keys.index(panel.key)][metrics.index(panel.metric)]
        axis.set_visible(True)
        _draw_panel(axis, panel)
    for row, key in zip(axes, keys, strict=True):  # a row's panels share their lines: one legend, beside
        panel = next(panel for panel in chart.panels if panel.key == key)
        if len(panel.series) > 1:
            _legend(next(axis for axis in reversed(row) if axis.get_visible()), panel)
    title = "final metrics against the swept values: mean over seeds, bars from lowest to highest"
    if chart.left_out:
        runs = "1 run" if len(chart.left_out) == 1 else f"{len(chart.left_out)} runs"
        title += f"\n{runs} left out (did not complete), {chart.completed} in the means"
    title_figure(figure, title, fontsize=PT["title"] + 1)
    return figure


def _draw_panel(axis: Any, panel: Panel) -> None:
    literal = {"parse_math": False, "usetex": False}  # keys and values are the run folder's text
    categorical = panel.scale == "categorical"
    many = len(panel.series) > 1
    for index, line in enumerate(panel.series):
        if not line.x:
            continue
        colour = COLOURS[index % len(COLOURS)]
        if categorical:  # side by side at each value, so the bars of several lines do not hide each other
            shift = (index - (len(panel.series) - 1) / 2) * 0.08 if many else 0.0
            xs = [panel.values.index(value) + shift for value in line.x]
        else:
            xs = [float(value) for value in line.x]
        below = [mean - low for mean, low in zip(line.mean, line.low, strict=True)]
        above = [high - mean for mean, high in zip(line.mean, line.high, strict=True)]
        axis.errorbar(xs, line.mean, yerr=[below, above], marker="o", markersize=6, capsize=4, linewidth=1.8,
                      color=colour, label=" · ".join(line.setting) or None, zorder=3)  # fmt: skip
    if panel.baseline is not None:  # named on the line itself: the legend is for the runs
        name, value = panel.baseline
        axis.axhline(value, color="tab:green", linestyle="--", linewidth=1.4, zorder=1)
        axis.text(0.99, value, f"{name}: {value:.3g}", transform=axis.get_yaxis_transform(), ha="right",
                  va="bottom", fontsize=PT["legend"], color="tab:green", zorder=4, **literal)  # fmt: skip
    if categorical:
        axis.set_xticks(range(len(panel.values)), panel.values, **literal)
        axis.set_xlim(-0.5, len(panel.values) - 0.5)
    else:
        if panel.scale == "log":
            axis.set_xscale("log")
        if len(panel.values) <= MAX_TICKS:  # a tick at each value swept, written as it was typed
            axis.set_xticks([float(value) for value in panel.values], panel.values, **literal)
            axis.minorticks_off()
    name = panel.metric.split("_", 1)[-1]
    if name == "accuracy":
        axis.set_ylim(0, 1.02)  # from 0 to 1: a spread of 0.097-0.104 must look like what it is
    elif name in ("loss", "perplexity") and _spans_decades(panel):
        axis.set_yscale("log")
    scale = " (log scale)" if panel.scale == "log" else ""
    axis.set_xlabel(panel.key + scale, fontsize=PT["label"], **literal)
    axis.set_ylabel(panel.metric, fontsize=PT["label"], **literal)
    axis.set_title(f"{panel.metric} against {panel.key}", fontsize=PT["title"], **literal)
    axis.tick_params(labelsize=PT["ticks"])
    axis.grid(alpha=0.3)


def _legend(axis: Any, panel: Panel) -> None:
    """The lines' legend beside the row's last panel: titled by the other swept keys, a line per setting."""
    from nnexp.look.plots import legend_text

    handles, labels = axis.get_legend_handles_labels()
    title = legend_text(" · ".join(panel.others))
    legend = axis.legend(handles, [legend_text(label) for label in labels], loc="upper left", title=title,
                         bbox_to_anchor=(1.02, 1.0), borderaxespad=0, fontsize=PT["legend"],
                         title_fontsize=PT["legend"])  # fmt: skip
    for text in [*legend.get_texts(), legend.get_title()]:
        text.set_parse_math(False)  # the run folder's text, never TeX
        text.set_usetex(False)


def _spans_decades(panel: Panel) -> bool:
    values = [value for line in panel.series for value in (*line.low, *line.high) if value > 0]
    return len(values) > 1 and math.log10(max(values) / min(values)) > 1.5


def chart_beside(
    table: pd.DataFrame, differing: list[str], picture: Path | None
) -> tuple[SweepChart | None, Path | None]:
    """The chart of `table` and where it goes: CHART_FILE beside `picture` (the overlay's PNG, else the
    page); (None, None) when nothing is written beside the runs or there is nothing to chart."""
    chart = sweep_chart(table, differing) if picture is not None else None
    return (chart, Path(picture).parent / CHART_FILE) if chart is not None and picture else (None, None)


def a_chart_drawn_before(path: Path) -> bool:
    """A PNG whose text says matplotlib made it: a chart an earlier report drew, not the user's own file."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return image.format == "PNG" and str(image.info.get("Software", "")).startswith("Matplotlib")
    except (OSError, UnidentifiedImageError, ValueError):
        return False


def save_chart(chart: SweepChart, path: Path, warn: Callable[[str], None]) -> bytes | None:
    """The chart's PNG, written whole to `path`, and its bytes for the page; None, said through `warn`
    and no file written, when matplotlib cannot draw it (values near 1e308 break its tick locator)."""
    from nnexp.atomic import write_atomically
    from nnexp.errors import first_line
    from nnexp.look.canvas import png_bytes

    with warnings.catch_warnings(record=True):  # an overflow's RuntimeWarning: the picture still shows it
        warnings.simplefilter("always")
        try:
            data = png_bytes(chart_figure(chart))
        except (ValueError, ArithmeticError, RuntimeError) as error:
            warn(f"the sweep chart could not be drawn ({first_line(error)}); {path.name} is not written")
            return None
    write_atomically(Path(path), data, durable=False)  # a picture lost to a power cut is drawn again
    return data


__all__ = ["CHART_FILE", "Panel", "Series", "SweepChart", "a_chart_drawn_before", "axis_scale",
           "chart_beside", "chart_figure", "headline_metrics", "save_chart", "sweep_chart"]  # fmt: skip
