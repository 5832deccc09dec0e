"""`nnexp-report DIR --html`: one self-contained page for a sweep or any folder of runs.

The table of runs (click a column header to sort it), the chart of each final metric against each swept
value (nnexp/look/sweep_chart.py), the learning curves of every run overlaid in one figure, and the mean ±
std of the runs that differ only in their seed or their fold (k-fold cross-validation, `data.fold`). The
table is the one nnexp-report prints, read by `nnexp.look.report.collect`; each run's name links to its own
report.html. A wide table scrolls sideways in its own box, the run's name at its left and the baseline at
its right held in view (`position: sticky`), so the page fits a 1280 px projector.

The run folders are untrusted (people share them): a run's name is shown escaped and linked by a
percent-encoded relative path, never as a URL it could choose, and the page's Content-Security-Policy
runs only SORT_SCRIPT, allowed by its SHA-256 (`SORT_SCRIPT_SOURCE`, computed here from the text).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from nnexp.look.groups import BASELINE_COLUMN
from nnexp.look.page import (
    PAGE_FILE,
    STYLE,
    document,
    esc,
    fmt,
    image_bytes,
    relative_link,
    source_hash,
    written_by_nnexp,
)

# Sorts the table by the clicked column: numbers by the value in data-v, text alphabetically;
# a second click reverses. Inline, a few lines, nothing fetched.
SORT_SCRIPT = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (th, col) {
    th.classList.add("sortable");
    th.title = "click to sort";
    th.addEventListener("click", function () {
      var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
      var up = th.dataset.dir !== "asc"; th.dataset.dir = up ? "asc" : "desc";
      function key(row) {
        var c = row.cells[col];
        return c.dataset.v !== undefined ? parseFloat(c.dataset.v) : c.textContent;
      }
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        if (typeof x === "number" && typeof y === "number") {
          if (isNaN(x)) return 1; if (isNaN(y)) return -1; return up ? x - y : y - x;
        }
        return up ? String(x).localeCompare(String(y)) : String(y).localeCompare(String(x));
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
// report.html#sort=COLUMN opens the runs sorted by that column, ascending (a link to share).
var wanted = location.hash.match(/^#sort=(.+)$/), column = null;
try { column = wanted && decodeURIComponent(wanted[1]); } catch (e) { column = null; }  // a malformed %
document.querySelectorAll("#runs th").forEach(function (th) {
  if (column !== null && th.textContent === column) th.click();
});
"""
# The page's Content-Security-Policy allows this script, and no other, by its hash.
SORT_SCRIPT_SOURCE = source_hash(SORT_SCRIPT)

STICKY_WIDTH_EM = 8  # each baseline column held at the right: a fixed width, so each knows its offset
MAX_STICKY_RIGHT = 3  # the baseline's name and up to two of its values
# The tables of this page: a box that scrolls sideways, the first column and the baseline's held in view.
# `separate` borders: collapsed ones stay behind when a sticky cell moves.
TABLE_STYLE = """
.scroll { overflow-x: auto; max-width: 100%; margin: 0.5em 0; }
.scroll table { border-collapse: separate; border-spacing: 0; margin: 0; }
.scroll th, .scroll td { border-width: 0 1px 1px 0; } .scroll tr > :first-child { border-left-width: 1px; }
.scroll thead th { border-top-width: 1px; }
.scroll .hold-left, .scroll .hold-right { position: sticky; background: #fff; z-index: 1; }
.scroll th.hold-left, .scroll th.hold-right { background: #f3f3f3; z-index: 2; }
.scroll .hold-left { left: 0; min-width: 6em; max-width: 16em; overflow-wrap: anywhere; }
.scroll .hold-left { box-shadow: 2px 0 0 #bbb; }
.scroll .hold-right { box-sizing: border-box; overflow-wrap: anywhere; }
.scroll .edge { box-shadow: -2px 0 0 #bbb; }
""" + "".join(
    f".scroll .right-{i} {{ right: {i * STICKY_WIDTH_EM}em; width: {STICKY_WIDTH_EM}em; "
    f"min-width: {STICKY_WIDTH_EM}em; max-width: {STICKY_WIDTH_EM}em; }}\n"
    for i in range(MAX_STICKY_RIGHT)
)


def sweep_page(
    title: str,
    runs: pd.DataFrame,
    columns: list[str],
    sort: str | None,
    grouped: pd.DataFrame | None,
    group_columns: list[str],
    curves: list[tuple[str, Path]],
    page_path: Path,
    warn: Callable[[str], None],
    overlay_png: bytes | None = None,
    chart: tuple[bytes, str] | None = None,
) -> str:
    """The page's HTML. `runs` is nnexp-report's table (one row per run, `_path` its folder); `curves` are
    (label, run folder), best first; `overlay_png` is their overlay when it is drawn already (--plot),
    b"" when it could not be drawn, None to draw it here; `chart` is the sweep chart's (PNG, caption), its
    PNG b"" when it could not be drawn, None when nothing but the seed or fold was swept."""
    columns = baseline_last(columns)
    body = [
        f"<h1>{esc(title)}</h1>",
        f"<p class='muted'>{len(runs)} runs, sorted by {esc(sort or 'folder')}; click a column header "
        f"to sort by it (again: the other way; report.html#sort=COLUMN opens sorted). Each run's name opens "
        f"its own page; a wide table scrolls sideways, its first column and the baseline held in view.</p>",
        "<h2>Runs</h2>",
        _runs_table(runs, columns, page_path),
    ]
    body += ["<h2>Final metrics against the swept values</h2>", _chart(chart)]
    body += ["<h2>Learning curves</h2>", _overlay(curves, sort, warn, overlay_png)]
    body.append("<h2>Mean ± std over seeds and folds</h2>")
    if grouped is None:
        body.append("<p class='muted'>no runs here differ only in their seed or their fold (data.fold)</p>")
    else:
        body.append(_grouped_table(grouped, baseline_last(group_columns)))
    return document(title, body, SORT_SCRIPT, style=STYLE + TABLE_STYLE)  # this page alone has wide tables


def baseline_last(columns: list[str]) -> list[str]:
    """The baseline's columns moved to the right end, where they stay in view as the table scrolls."""
    held = [column for column in columns if _is_baseline(column)]
    return [*(column for column in columns if column not in held), *held]


def _held(columns: list[str]) -> list[str]:
    """The class of each column's cells: the first held at the left, the baseline's (last) at the right."""
    right = 0
    while right < min(MAX_STICKY_RIGHT, len(columns) - 1) and _is_baseline(columns[-1 - right]):
        right += 1
    classes = ["hold-left", *([""] * (len(columns) - 1))]
    for offset in range(right):  # 0 at the right edge
        edge = " edge" if offset == right - 1 else ""  # a line where the scrolling columns pass under
        classes[len(columns) - 1 - offset] = f"hold-right right-{offset}{edge}"
    return classes


def _is_baseline(column: str) -> bool:
    return column == BASELINE_COLUMN or column.startswith("baseline_")


def _head(columns: list[str], held: list[str]) -> str:
    return "".join(
        f'<th class="{css}">{esc(column)}</th>' if css else f"<th>{esc(column)}</th>"
        for column, css in zip(columns, held, strict=True)
    )


def _runs_table(runs: pd.DataFrame, columns: list[str], page_path: Path) -> str:
    held = _held(columns)
    lines = [f'<div class="scroll"><table class="sortable" id="runs"><thead><tr>{_head(columns, held)}'
             f"</tr></thead><tbody>"]  # fmt: skip
    for _, row in runs.iterrows():
        cells = []
        for column, css in zip(columns, held, strict=True):
            value = row.get(column)
            if column == "run":
                link = _run_link(str(value), Path(row["_path"]), page_path)
                cells.append(f'<td class="{css}">{link}</td>' if css else f"<td>{link}</td>")
            else:
                cells.append(_sortable_cell(value, css=css))
        failed = row.get("status", "completed") != "completed"
        opening = '<tr class="not-completed">' if failed else "<tr>"
        lines.append(f"{opening}{''.join(cells)}</tr>")
    lines.append("</tbody></table></div>")
    return "".join(lines)


def _sortable_cell(value: Any, std: Any = None, css: str = "") -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f'<td class="{f"num {css}".strip()}" data-v="{esc(value)}">{esc(fmt(value, std))}</td>'
    opening = f'<td class="{css}">' if css else "<td>"
    return f"{opening}{esc(fmt(value))}</td>"


def _run_link(name: str, run: Path, page_path: Path) -> str:
    page = run / PAGE_FILE
    if not written_by_nnexp(page):  # missing, or a page nnexp did not write: it might run code
        return esc(name)
    return f'<a href="{esc(relative_link(page, page_path))}">{esc(name)}</a>'


def _grouped_table(grouped: pd.DataFrame, columns: list[str]) -> str:
    held = _held(columns)
    lines = [f'<div class="scroll"><table class="sortable" id="groups"><thead><tr>{_head(columns, held)}'
             f"</tr></thead><tbody>"]  # fmt: skip
    for _, row in grouped.iterrows():
        cells = [_sortable_cell(row.get(column), row.get(f"{column}_std"), css)
                 for column, css in zip(columns, held, strict=True)]  # fmt: skip
        lines.append(f"<tr>{''.join(cells)}</tr>")
    lines.append("</tbody></table></div>")
    return "".join(lines)


def _chart(chart: tuple[bytes, str] | None) -> str:
    if chart is None:
        return ("<p class='muted'>nothing to chart: no value but the seed or the fold differs between the "
                "runs, the runs learned from different data (experiment, data, data.path or data.target "
                "differ), or no completed run has a final metric</p>")  # fmt: skip
    data, caption = chart
    if not data:
        return "<p class='muted'>the chart could not be drawn (nnexp-report's warning says why)</p>"
    return image_bytes(data, "each final metric against each swept value", caption)


def _overlay(
    curves: list[tuple[str, Path]], sort: str | None, warn: Callable[[str], None], data: bytes | None
) -> str:
    from nnexp.look.plots import BEST_NAMED, MAX_NAMED, overlay_png

    if not any((run / "metrics.csv").is_file() for _, run in curves):
        return "<p class='muted'>no run here recorded metrics.csv</p>"
    if data is None:
        data = overlay_png(curves, warn=warn, ranked_by=sort)
    if not data:  # None, or b"" from nnexp-report: the warning on its console said why
        return "<p class='muted'>the learning curves could not be drawn (nnexp-report's warning says why)</p>"
    caption = "validation solid, training dashed; a colour per run"
    if len(curves) > MAX_NAMED:
        caption += f" for the first {BEST_NAMED} of the table, the others thin and grey"
    return image_bytes(data, "learning curves of every run", caption)


__all__ = ["SORT_SCRIPT", "SORT_SCRIPT_SOURCE", "sweep_page"]
