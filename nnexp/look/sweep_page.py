"""`nnexp-report DIR --html`: one self-contained page for a sweep or any folder of runs.

The table of runs (click a column header to sort it), the learning curves of every run overlaid in one
figure, and the mean ± std of the runs that differ only in their seed or their fold (k-fold
cross-validation, `data.fold`). The table is the one nnexp-report prints, read by
`nnexp.look.report.collect`; each run's name links to its own report.html.

The run folders are untrusted (people share them): a run's name is shown escaped and linked by a
percent-encoded relative path, never as a URL it could choose, and the page's Content-Security-Policy
runs only SORT_SCRIPT, allowed by its SHA-256 (`SORT_SCRIPT_SOURCE`, computed here from the text).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from nnexp.look.page import (
    PAGE_FILE,
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
) -> str:
    """The page's HTML. `runs` is nnexp-report's table (one row per run, `_path` its folder); `curves` are
    (label, run folder), best first; `overlay_png` is their overlay when it is drawn already (--plot),
    b"" when it could not be drawn, None to draw it here."""
    body = [
        f"<h1>{esc(title)}</h1>",
        f"<p class='muted'>{len(runs)} runs, sorted by {esc(sort or 'folder')}; click a column header "
        f"to sort by it (again: the other way; report.html#sort=COLUMN opens sorted). Each run's name opens "
        f"its own page.</p>",
        "<h2>Runs</h2>",
        _runs_table(runs, columns, page_path),
    ]
    body += ["<h2>Learning curves</h2>", _overlay(curves, sort, warn, overlay_png)]
    body.append("<h2>Mean ± std over seeds and folds</h2>")
    if grouped is None:
        body.append("<p class='muted'>no runs here differ only in their seed or their fold (data.fold)</p>")
    else:
        body.append(_grouped_table(grouped, group_columns))
    return document(title, body, SORT_SCRIPT)


def _runs_table(runs: pd.DataFrame, columns: list[str], page_path: Path) -> str:
    head = "".join(f"<th>{esc(column)}</th>" for column in columns)
    lines = [f'<table class="sortable" id="runs"><thead><tr>{head}</tr></thead><tbody>']
    for _, row in runs.iterrows():
        cells = []
        for column in columns:
            value = row.get(column)
            if column == "run":
                cells.append(f"<td>{_run_link(str(value), Path(row['_path']), page_path)}</td>")
            else:
                cells.append(_sortable_cell(value))
        failed = row.get("status", "completed") != "completed"
        opening = '<tr class="not-completed">' if failed else "<tr>"
        lines.append(f"{opening}{''.join(cells)}</tr>")
    lines.append("</tbody></table>")
    return "".join(lines)


def _sortable_cell(value: Any, std: Any = None) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f'<td class="num" data-v="{esc(value)}">{esc(fmt(value, std))}</td>'
    return f"<td>{esc(fmt(value))}</td>"


def _run_link(name: str, run: Path, page_path: Path) -> str:
    page = run / PAGE_FILE
    if not written_by_nnexp(page):  # missing, or a page nnexp did not write: it might run code
        return esc(name)
    return f'<a href="{esc(relative_link(page, page_path))}">{esc(name)}</a>'


def _grouped_table(grouped: pd.DataFrame, columns: list[str]) -> str:
    head = "".join(f"<th>{esc(column)}</th>" for column in columns)
    lines = [f'<table class="sortable" id="groups"><thead><tr>{head}</tr></thead><tbody>']
    for _, row in grouped.iterrows():
        cells = [_sortable_cell(row.get(column), row.get(f"{column}_std")) for column in columns]
        lines.append(f"<tr>{''.join(cells)}</tr>")
    lines.append("</tbody></table>")
    return "".join(lines)


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
