"""learning_curves.png's panels beside the loss and the main metric: what metrics.csv records every epoch
and no other picture shows, drawn where the run has it.

- the gradient norm of each layer (`grad_norm/<layer>`, measured on a fixed batch by diagnostics/probe.py):
  vanishing gradients are a first layer's line orders of magnitude below the last one's;
- the share of each ReLU's units never active on that batch (`dead_relu/<relu>`): dying ReLUs climb;
- the learning rate (`lr`), only where it changes: a scheduler's schedule.

A regression trained on its mse and a language model (perplexity = exp(loss)) draw one metric panel, so
these take the space a duplicate would have had. The panels are laid out in one row of at most three, else
the curves over a row of these; every panel is as cheap as a panel can be (a placed title, a few ticks).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from nnexp.look.canvas import colour_map, new_figure

# diagnostics/probe.py's column prefixes (GRAD_NORM, DEAD_RELU), written out: importing it imports torch,
# which nnexp-report does not need to draw a curve (tests/test_learning_curve_panels.py checks they agree)
GRAD_NORM, DEAD_RELU, LR = "grad_norm/", "dead_relu/", "lr"
TITLES = {
    GRAD_NORM: "gradient norm per layer",
    DEAD_RELU: "dead ReLUs: share never active",
    LR: "learning rate (the scheduler's)",
}
MAX_LINES = 6  # layers drawn in one panel: the first, the last and evenly between
PANEL_IN = (5.0, 4.0)  # one panel's width and height in inches, as the loss's
INSIDE_HEIGHT_IN = 3.2  # a row of them under the curves: lower, each inch is pixels to draw and compress
PER_ROW = 3

Metrics = dict[str, list[float]]


def _finite(values: Sequence[float]) -> list[float]:
    return [value for value in values if not math.isnan(value) and math.isfinite(value)]


def layer_columns(metrics: Metrics, prefix: str) -> list[str]:
    """The columns of `prefix` that hold a value, in the order recorded (forward order: input to output)."""
    return [column for column in metrics if column.startswith(prefix) and _finite(metrics[column])]


def inside_panels(metrics: Metrics) -> list[tuple[str, str]]:
    """(what, title) of each panel this run's metrics give: GRAD_NORM, DEAD_RELU, LR, in that order."""
    panels = []
    for prefix in (GRAD_NORM, DEAD_RELU):
        columns = layer_columns(metrics, prefix)
        if columns:
            shown = len(_evenly(columns))
            more = f" ({shown} of {len(columns)})" if shown < len(columns) else ""
            panels.append((prefix, TITLES[prefix] + more))
    rates = _finite(metrics.get(LR, []))
    if rates and not math.isclose(min(rates), max(rates), rel_tol=1e-9, abs_tol=0.0):
        panels.append((LR, TITLES[LR]))
    return panels


def _evenly(columns: list[str]) -> list[str]:
    if len(columns) <= MAX_LINES:
        return columns
    step = (len(columns) - 1) / (MAX_LINES - 1)
    return [columns[round(index * step)] for index in range(MAX_LINES)]


def panel_axes(curves: int, inside: int) -> tuple[Any, list[Any]]:
    """A figure with `curves` panels and then `inside` panels: one row when they fit in PER_ROW, else the
    curves over the others; the axes in that order (the empty places of a grid get none)."""
    if curves + inside <= PER_ROW:
        places = [(0, column) for column in range(curves + inside)]
        rows, columns = 1, curves + inside
    else:
        places = [(0, column) for column in range(curves)] + [(1, column) for column in range(inside)]
        rows, columns = 2, max(curves, inside)
    heights = [PANEL_IN[1], INSIDE_HEIGHT_IN][:rows]
    figure = new_figure(figsize=(PANEL_IN[0] * columns, sum(heights)))
    grid = figure.add_gridspec(rows, columns, height_ratios=heights)
    return figure, [figure.add_subplot(grid[row, column]) for row, column in places]


def set_margins(
    figure: Any, axes: list[Any], headline_lines: int, title_pt: float, headline_pt: float
) -> None:
    """Margins in inches for the tick labels, axis labels and titles: what tight_layout finds for these
    panels, without drawing the figure a second time to measure them (a third of the curves' cost)."""
    rows, columns = axes[0].get_subplotspec().get_gridspec().get_geometry()
    width, height = figure.get_size_inches()
    left, right, bottom, gap = 0.8, 0.2, 0.55, 0.9
    title = title_pt / 72 * 1.6
    top = 0.15 + headline_lines * headline_pt / 72 * 1.25 + title
    axis_width = (width - left - right - gap * (columns - 1)) / columns
    between = bottom + title + 0.1  # the upper row's epoch label, the lower row's titles
    axis_height = (height - top - bottom - between * (rows - 1)) / rows
    figure.subplots_adjust(left=left / width, right=1 - right / width, bottom=bottom / height,
                           top=1 - top / height, wspace=gap / axis_width,
                           hspace=between / axis_height)  # fmt: skip


def draw_inside(axis: Any, metrics: Metrics, what: str, title: str, title_pt: float) -> None:
    """One of `inside_panels`' panels: a line per layer (coloured by depth, input dark), or the rate."""
    epochs = metrics.get("epoch", [])
    columns = [LR] if what == LR else _evenly(layer_columns(metrics, what))
    colours = colour_map("viridis")
    for index, column in enumerate(columns):
        points = [(e, v) for e, v in zip(epochs, metrics[column], strict=False) if _finite([e, v])]
        if not points:
            continue
        x, y = zip(*points, strict=True)
        colour = "tab:purple" if what == LR else colours(0.85 * index / max(1, len(columns) - 1))
        axis.plot(x, y, color=colour, marker="." if len(points) < 30 else None,
                  label=column.removeprefix(what) if what != LR else None)  # fmt: skip
    values = _finite([v for column in columns for v in metrics[column]])
    if values and min(values) > 0 and max(values) / min(values) > 30:  # e.g. vanishing gradients
        axis.set_yscale("log")
    elif what == DEAD_RELU:
        axis.set_ylim(0, min(1.0, max([0.1, *values]) * 1.15))  # shares: from none
    few_ticks(axis)
    axis.set(xlabel="epoch", ylabel={GRAD_NORM: "L2 norm", DEAD_RELU: "share of units", LR: "lr"}[what])
    axis.set_title(title, fontsize=title_pt, y=1.0)  # placed: not moved around the tick labels
    axis.grid(alpha=0.3)
    if what != LR and axis.get_legend_handles_labels()[0]:  # a layer with no finite value draws no line
        legend = axis.legend(fontsize=9)
        for text in legend.get_texts():  # a layer's name as it is, never TeX
            text.set_parse_math(False)


def few_ticks(axis: Any) -> None:
    """About six whole epochs on x, about six values on a linear y axis, no minor ticks on a log one (a
    major tick each decade, each with its grid line): every tick is two lines and a label to lay and draw."""
    from matplotlib.ticker import MaxNLocator, NullLocator

    axis.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=6))
    if axis.get_yscale() == "log":
        axis.yaxis.set_minor_locator(NullLocator())
    else:
        axis.yaxis.set_major_locator(MaxNLocator(nbins=6))
