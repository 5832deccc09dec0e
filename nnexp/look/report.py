"""`nnexp-report PATH...`: one row per run of the run and sweep folders under PATH, side by side.

    nnexp-report outputs/multirun/2026-11-23/10-00-00                  # a sweep: which variant won?
    nnexp-report outputs --sort val_loss --csv runs.csv --plot curves.png
    nnexp-report outputs/multirun/... --group-by                       # mean ± std over seeds
    nnexp-report outputs/multirun/...     # a k-fold sweep (data.fold=0..K-1): the folds' mean ± std too

The columns are the overrides that differ between the runs (what was compared), the status, the final
metrics (and each evaluated metric's best over the epochs: val, else train_eval), epochs, wall time, and the
strongest baseline of the run's summary (e.g. `logistic regression` with its `baseline_test_accuracy`).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from rich.console import Console
from rich.table import Table
from rich.text import Text

from nnexp.config.trust import problem_in_saved_config
from nnexp.errors import UserError, environment_fault, exit_with, first_line, unwritable_folder
from nnexp.look.groups import BASELINE_COLUMN, DIAGNOSTICS_COLUMN, FOLD_KEY, group_table, settings_of
from nnexp.look.sweep_chart import CHART_FILE, a_chart_drawn_before, chart_beside, save_chart
from nnexp.look.train_numbers import evaluated_best
from nnexp.look.whole import write_whole
from nnexp.runs.console import PlainLines
from nnexp.runs.folder import holds_a_run

SORT_PREFERENCE = ("val_accuracy", "test_accuracy", "val_perplexity", "val_mse", "val_loss", "test_loss")
INFO_COLUMNS = ("status", "epochs", "wall_s")
PROBLEM = "_problem"  # why a run's files could not be read; said on stderr, not a column of the table
HEADLINE_METRICS = ("accuracy", "mse", "perplexity")  # the one value of a baseline a row has room for
# As nnexp.train.metrics', which imports torch (2.4 s of a report); tests/test_report.py checks they agree.
HIGHER_IS_BETTER = frozenset({"accuracy"})


def find_runs(paths: list[Path]) -> list[Path]:
    """Every run folder (one holding summary.json or Hydra's .hydra/) at or under each path."""
    found: set[Path] = set()
    for path in paths:
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such file or folder")
        if path.is_file():
            path = path.parent
        for marker in ("summary.json", ".hydra/overrides.yaml"):
            found.update(hit.parent if marker == "summary.json" else hit.parent.parent
                         for hit in path.rglob(marker))  # fmt: skip
            if (path / marker).exists():
                found.add(path)
    return sorted(found)


def read_overrides(run: Path) -> dict[str, str]:
    """The command-line overrides of a run, as {key: value} (`optim=sgd` -> {"optim": "sgd"})."""
    path = run / ".hydra" / "overrides.yaml"
    lines = yaml.safe_load(path.read_text()) if path.is_file() else []
    overrides: dict[str, str] = {}
    for line in lines or []:
        key, _, value = str(line).partition("=")
        overrides[key.lstrip("+~")] = value
    return overrides


def run_record(run: Path) -> dict[str, Any]:
    """The run's row; a summary.json that cannot be read makes a `damaged` row that says why."""
    summary_path = run / "summary.json"
    try:
        summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
        return _record_of(summary)
    except (OSError, ValueError, TypeError, AttributeError, KeyError) as error:
        problem = f"{summary_path}: cannot be read ({first_line(error)})"
        return {"status": "damaged", "epochs": None, "wall_s": None, DIAGNOSTICS_COLUMN: "", PROBLEM: problem}


def _record_of(summary: Any) -> dict[str, Any]:
    if not isinstance(summary, dict):
        raise TypeError(f"a JSON {type(summary).__name__}, not an object")
    record: dict[str, Any] = {
        "status": summary.get("status", "failed"),  # no summary: the job failed before its run began
        "epochs": summary.get("epochs_completed"),
        "wall_s": summary.get("wall_time_s"),
        # The learner diagnostics' codes, e.g. "stuck-loss, chance-level"; empty when none fired.
        DIAGNOSTICS_COLUMN: ", ".join(finding["code"] for finding in summary.get("diagnostics", [])),
    }
    metrics = summary.get("metrics", {})
    record.update(_numbers(metrics.get("final", {})))
    best = evaluated_best(_numbers(metrics.get("best", {})))[0]  # validation, else train_eval_*
    record.update({f"best_{key}": value for key, value in best.items()})
    # Runs recorded before there was a list of baselines kept their one least-squares fit as "baseline".
    baselines = summary.get("baselines") or ([summary["baseline"]] if "baseline" in summary else [])
    record.update(strongest_baseline(baselines))
    return record


def _numbers(values: dict[str, Any]) -> dict[str, Any]:
    # A value that is no number (a damaged summary) is a blank cell of its run, not a column turned to text.
    return {key: value for key, value in values.items() if type(value) in (int, float)}


def strongest_baseline(baselines: list[dict[str, Any]]) -> dict[str, Any]:
    """The baseline to beat: the best on the task's headline metric, on the test split (else val).

    `{"baseline": "logistic regression", "baseline_test_accuracy": 0.972}`; `{}` when there is none.
    """
    for column in (f"{split}_{metric}" for metric in HEADLINE_METRICS for split in ("test", "val")):
        scored = [baseline for baseline in baselines if isinstance(baseline.get(column), (int, float))]
        if scored:
            pick = max if higher_is_better(column) else min
            best = pick(scored, key=lambda baseline: baseline[column])
            return {BASELINE_COLUMN: best["name"], f"baseline_{column}": best[column]}
    return {}


def collect(paths: list[Path]) -> tuple[pd.DataFrame, list[str]]:
    """The table (one row per run, indexed by run folder) and the names of the differing overrides."""
    runs = find_runs(paths)
    overrides, unreadable = {}, {}
    for run in runs:
        try:
            overrides[run] = read_overrides(run)
        except (OSError, ValueError, yaml.YAMLError) as error:
            overrides[run] = {}
            unreadable[run] = f"{run / '.hydra' / 'overrides.yaml'}: cannot be read ({first_line(error)})"
    keys = list(dict.fromkeys(key for run in runs for key in overrides[run]))
    differing = [key for key in keys if len({overrides[run].get(key, "") for run in runs}) > 1]
    if len(runs) == 1:
        differing = keys  # a single run: show what it was run with
    common = Path(os.path.commonpath(runs)) if runs else Path()
    rows = []
    for run in runs:
        row: dict[str, Any] = {"run": str(run.relative_to(common)) if run != common else run.name}
        row.update({key: overrides[run].get(key, "") for key in differing})
        row.update(run_record(run))
        if run in unreadable:
            row[PROBLEM] = unreadable[run]
        if names_code := problem_in_saved_config(run / ".hydra" / "config.yaml"):  # shown, never run
            row[PROBLEM] = "; ".join(filter(None, [row.get(PROBLEM), names_code]))
        row["_path"] = str(run)
        rows.append(row)
    table = pd.DataFrame(rows)
    return table, differing


def metric_columns(table: pd.DataFrame, differing: list[str]) -> list[str]:
    skip = {"run", "_path", *differing, *INFO_COLUMNS}
    columns = [c for c in table.columns if c not in skip and pd.api.types.is_numeric_dtype(table[c])]
    order = {"val": 0, "test": 1, "train": 2, "best": 3}
    return sorted(columns, key=lambda c: (order.get(c.split("_", 1)[0], 4), c))


def with_baseline_name(metrics: list[str], table: pd.DataFrame) -> list[str]:
    """The metric columns with the baseline's name just before its value, so the two read together."""
    if BASELINE_COLUMN not in table:
        return metrics
    first = next((i for i, column in enumerate(metrics) if column.startswith("baseline_")), len(metrics))
    return [*metrics[:first], BASELINE_COLUMN, *metrics[first:]]


def higher_is_better(column: str) -> bool:
    return column.rsplit("_", 1)[-1] in HIGHER_IS_BETTER


def default_sort(columns: list[str]) -> str | None:
    return next((column for column in SORT_PREFERENCE if column in columns), columns[0] if columns else None)


def sort_table(table: pd.DataFrame, column: str | None) -> pd.DataFrame:
    if column is None or column not in table:
        return table
    return table.sort_values(
        column, ascending=not higher_is_better(column), na_position="last", kind="stable"
    )


def grouped_view(
    table: pd.DataFrame, by: list[str], metrics: list[str], sort: str | None
) -> tuple[pd.DataFrame, list[str]]:
    """The runs' mean ± std per value of `by` (nnexp.look.groups), sorted, and the columns to show."""
    grouped = sort_table(group_table(table, by, metrics), sort)
    shown = [metric for metric in metrics if not metric.startswith("train_")]  # the CSV has them
    columns = [*by, "runs", "completed", *with_baseline_name(shown, grouped), "epochs", "wall_s"]
    return grouped, [*columns, DIAGNOSTICS_COLUMN]


def _fmt(value: Any, std: Any = None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        text = f"{value:.4g}"
        if std is not None and not (isinstance(std, float) and math.isnan(std)):
            text += f" ± {std:.2g}"
        return text
    return str(value)


def rich_table(table: pd.DataFrame, columns: list[str], title: str, std: bool = False) -> Table:
    # Text(): a run folder's `[/red]` or `[link=...]` is shown as it is, never read as rich markup.
    shown = Table(title=Text(title), title_justify="left")
    for column in columns:
        numeric = pd.api.types.is_numeric_dtype(table[column])
        shown.add_column(Text(column), justify="right" if numeric else "left", overflow="fold")
    for _, row in table.iterrows():
        cells = []
        for column in columns:
            spread = row.get(f"{column}_std") if std else None
            cells.append(_fmt(row[column], spread))
        style = None if row.get("status", "completed") == "completed" else "red"
        shown.add_row(*(Text(cell) for cell in cells), style=style)
    return shown


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="nnexp-report",
        description="Compare nnexp runs: one row per run folder found under each PATH (any nesting).",
    )
    add = parser.add_argument
    add("paths", nargs="+", type=Path, metavar="PATH", help="run folders, sweep folders, outputs/")
    add("--sort", metavar="METRIC", help="column to sort by (default: val_accuracy or val_loss)")
    add("--csv", type=Path, metavar="FILE", help="where to write the table (default: PATH/report.csv)")
    parser.add_argument(
        "--group-by",
        nargs="?",
        const="",
        metavar="KEYS",
        help="average over the runs that share these comma-separated overrides (mean ± std); "
        "with no KEYS: every differing override except seed and data.fold (the mean over seeds and folds)",
    )
    parser.add_argument(
        "--plot",
        nargs="?",
        const="",
        type=str,
        metavar="FILE",
        help="overlay the learning curves of all runs in one PNG (default: PATH/report.png)",
    )
    parser.add_argument(
        "--html",
        action="store_true",
        help="also write one self-contained page: the table (sortable), the curves, mean ± std over seeds",
    )
    add("--out", type=Path, metavar="FILE", help="where --html writes (default: PATH/report.html)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Piped: never wrap a cell, and no line padded with spaces.
    console = Console() if sys.stdout.isatty() else Console(width=400, file=PlainLines(sys.stdout))
    try:
        table, differing = collect(args.paths)
    except FileNotFoundError as error:
        sys.stderr.write(f"nnexp-report: error: {error}\n")
        return 2
    if table.empty:
        sys.stderr.write(f"nnexp-report: error: no run folders under {' '.join(map(str, args.paths))}\n")
        return 2
    for problem in table.get(PROBLEM, pd.Series(dtype=object)).dropna():
        sys.stderr.write(f"nnexp-report: warning: {problem}; the run is listed as it could be read\n")
    metrics = metric_columns(table, differing)
    sort = args.sort or default_sort(metrics)
    if args.sort and args.sort not in table:
        sys.stderr.write(
            f"nnexp-report: error: --sort {args.sort} is not a column: use one of {', '.join(metrics)}\n"
        )
        return 2
    base = args.paths[0] if args.paths[0].is_dir() else args.paths[0].parent
    # Beside the runs by default; never inside a run (a report on one run folder writes only where told).
    into_a_run = holds_a_run(base)
    csv_path = args.csv or (None if into_a_run else base / "report.csv")
    plot_path = None
    if args.plot is not None:
        plot_path = Path(args.plot) if args.plot else (None if into_a_run else base / "report.png")
        if plot_path is None:
            return _refuse(f"--plot: {base} is a run folder, and nnexp-report never writes into one; "
                           f"name the file, as --plot FILE")  # fmt: skip
    html_path = (args.out or (None if into_a_run else base / "report.html")) if args.html else None
    if args.html and html_path is None:
        return _refuse(f"--html: {base} is a run folder, and nnexp-report never writes into one (its own "
                       f"page is {base / 'report.html'}); name the file, as --html --out FILE")  # fmt: skip
    if args.out is not None and not args.html:
        return _refuse("--out names the page --html writes: add --html, or drop --out")
    # Each final metric against each swept value, beside the overlay or the page (none: only seeds swept).
    chart, chart_path = chart_beside(table, differing, plot_path or html_path)
    for option, path in (("--csv", csv_path), ("--plot", plot_path), ("--out", html_path),
                         ("the sweep chart", chart_path)):  # fmt: skip
        problem = _unwritable(path)
        if problem:
            return _refuse(f"{option} {path}: {problem}")

    if args.group_by is not None:
        by = [key for key in args.group_by.split(",") if key] or settings_of(differing)
        unknown = [key for key in by if key not in table]
        if unknown:
            sys.stderr.write(f"nnexp-report: error: --group-by {','.join(unknown)}: not a differing override "
                             f"(those are: {', '.join(differing) or 'none'})\n")  # fmt: skip
            return 2
        grouped, columns = grouped_view(table, by, metrics, sort)
        console.print(
            rich_table(grouped, columns, f"{len(table)} runs in {len(grouped)} groups, mean ± std", True)
        )
        if csv_path is not None:
            write_whole(csv_path, grouped.drop(columns=["_all"], errors="ignore").to_csv(index=False))
    else:
        table = sort_table(table, sort)
        columns = ["run", *differing, *INFO_COLUMNS, *with_baseline_name(metrics, table), DIAGNOSTICS_COLUMN]
        shown = [column for column in columns if not column.startswith("train_")]  # the CSV has them
        if not table[DIAGNOSTICS_COLUMN].any():  # shown when a run has some; the CSV always has the column
            shown.remove(DIAGNOSTICS_COLUMN)
        console.print(rich_table(table, shown, f"{len(table)} runs, sorted by {sort or 'folder'}"))
        if FOLD_KEY in differing and len(table) > 1:  # k-fold: each setting's mean ± std over its folds
            folds, fold_columns = grouped_view(table, settings_of(differing, (FOLD_KEY,)), metrics, sort)
            fold_columns = [c for c in fold_columns if c in shown or c not in table]  # as the runs' table
            console.print(rich_table(folds, fold_columns, f"mean ± std over the folds ({FOLD_KEY})", True))
        if csv_path is not None:
            write_whole(csv_path, table[columns].to_csv(index=False))
    written = csv_path or "not written (a run folder: --csv FILE writes it)"
    console.print(Text(f"table: {written}"))

    drawn = None
    if plot_path is not None:
        from nnexp.look.plots import save_overlay

        drawn = save_overlay(_curves(table, differing, sort), plot_path, warn=_warn, ranked_by=sort)
        console.print(Text(f"plot: {drawn or 'not drawn (the warning above says why)'}"))
    chart_png = save_chart(chart, chart_path, warn=_warn) if chart and chart_path else None
    if chart is not None:
        console.print(Text(f"chart: {chart_path if chart_png else 'not drawn (the warning above says why)'}"))
    if html_path is not None:
        # The page embeds the same overlay: drawn once, whether or not --plot wrote it to a file.
        overlay = None if plot_path is None else drawn.read_bytes() if drawn else b""
        chart_shown = None if chart is None else (chart_png or b"", chart.caption)
        _write_html(table, differing, metrics, sort, html_path, args.paths, overlay, chart_shown)
        console.print(Text(f"page: {html_path}"))
    return 0


def _warn(problem: str) -> None:
    sys.stderr.write(f"nnexp-report: warning: {problem}\n")


def _curves(table: pd.DataFrame, differing: list[str], sort: str | None) -> list[tuple[str, Path]]:
    """(label, run folder) of every run, best first: the overlay names the first ones."""
    return [(_label(row, differing), Path(row["_path"])) for _, row in sort_table(table, sort).iterrows()]


def _write_html(table: pd.DataFrame, differing: list[str], metrics: list[str], sort: str | None, path: Path,
                paths: list[Path], overlay: bytes | None = None,
                chart: tuple[bytes, str] | None = None) -> None:  # fmt: skip
    """The page of `nnexp-report --html`: the run table, the overlaid curves, mean ± std over seeds."""
    from nnexp.look.sweep_page import sweep_page

    table = sort_table(table, sort)
    columns = ["run", *differing, *INFO_COLUMNS, *with_baseline_name(metrics, table)]
    columns = [column for column in columns if not column.startswith("train_")]
    if table[DIAGNOSTICS_COLUMN].any():
        columns.append(DIAGNOSTICS_COLUMN)
    grouped, group_columns = None, []
    if settings_of(differing) != differing:  # the runs that differ only in their seed or fold, averaged
        by = settings_of(differing)
        grouped = sort_table(group_table(table, by, metrics), sort)
        group_columns = [*by, "runs", "completed", *(c for c in metrics if not c.startswith("train_")),
                         "epochs"]  # fmt: skip
    title = "nnexp runs: " + " ".join(str(p) for p in paths)
    curves = _curves(table, differing, sort)
    page = sweep_page(title, table, columns, sort, grouped, group_columns, curves, path, _warn, overlay,
                      chart)  # fmt: skip
    write_whole(path, page)


def _refuse(problem: str) -> int:
    sys.stderr.write(f"nnexp-report: error: {problem}\n")
    return 2


def _unwritable(path: Path | None) -> str | None:
    """Why `path` cannot be written, checked before anything is: a mistake writes no file at all."""
    if path is None:
        return None
    path = Path(path)
    target = path.resolve()  # through a link: where the bytes would land
    folder = target.parent
    run = next((parent for parent in (folder, *folder.parents) if holds_a_run(parent)), None)
    if run is not None:
        return f"lies in the run folder {run}, and nnexp-report never writes into one; choose another file"
    if target.name in ("ledger.jsonl", "multirun.yaml", "summary.json", "metrics.csv"):
        return "is a file nnexp keeps for its runs; choose another name"
    if path.is_dir():
        return "is a folder; name a file"
    if target.is_file() and not _written_by_nnexp_report(target):
        return "exists and is not a report nnexp-report wrote; choose a new name, or move the file first"
    if not folder.is_dir():
        return f"the folder {folder} does not exist; create it first or choose another"
    if not os.access(folder, os.W_OK):
        raise unwritable_folder(folder)  # the machine's refusal: exit code 4
    return None


def _written_by_nnexp_report(path: Path) -> bool:
    """A file a report may replace: its own default files beside the runs, or a table or page it wrote."""
    from nnexp.look.page import GENERATOR

    if path.name in ("report.csv", "report.png", "report.html"):
        return True
    if path.name == CHART_FILE:  # beside a page or a PNG the user names: never a file of the user's
        return a_chart_drawn_before(path)
    try:
        with path.open("rb") as handle:
            start = handle.read(4096).decode("utf-8", errors="replace")
    except OSError:
        return False
    if path.suffix == ".csv":  # a run table starts with `run`; a grouped one ends with runs,completed,...
        header = start.split("\n", 1)[0].strip().split(",")
        return header[:1] == ["run"] or {"runs", "completed", "wall_s"} <= set(header)
    return path.suffix in (".html", ".htm") and GENERATOR in start


def _label(row: pd.Series, differing: list[str]) -> str:
    parts = [f"{key}={row[key]}" for key in differing if row[key] != ""]
    return " ".join(parts) or str(row["run"])


def console_main() -> None:
    try:
        sys.exit(main())
    except UserError as error:  # a full disk, a read-only folder: exit code 4
        exit_with(error)
    except OSError as error:  # a full disk, a device that refuses the write
        if (fault := environment_fault(error, then="run nnexp-report again")) is not None:
            exit_with(fault)
        sys.exit(_refuse(f"cannot write {error.filename or 'the output'}: {error.strerror or error}"))


if __name__ == "__main__":
    console_main()


__all__ = ["collect", "console_main", "find_runs", "group_table", "main"]
