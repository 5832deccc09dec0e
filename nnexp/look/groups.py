"""Runs averaged in groups: the mean ± std of every metric over the runs that share their other settings.

nnexp-report averages over two kinds of repeats: runs that differ only in their seed (`--group-by`, the
page's table), and the K runs of a k-fold cross-validation, which differ only in `data.fold`
(`nnexp -m data.folds=K data.fold=0,...,K-1`, nnexp/data/folds.py): each setting becomes one row.
"""

from __future__ import annotations

import pandas as pd

DIAGNOSTICS_COLUMN = "diagnostics"
BASELINE_COLUMN = "baseline"  # the strongest baseline's name; its value is in baseline_<split>_<metric>
FOLD_KEY = "data.fold"  # the override a k-fold sweep varies
REPEATS = ("seed", FOLD_KEY)  # the overrides whose runs are repeats of one setting, averaged by default


def settings_of(differing: list[str], over: tuple[str, ...] = REPEATS) -> list[str]:
    """The differing overrides that tell settings apart: all but those averaged `over`."""
    return [key for key in differing if key not in over]


def group_table(table: pd.DataFrame, by: list[str], metrics: list[str]) -> pd.DataFrame:
    """Mean and standard deviation of every metric over the runs that share the values of `by`."""
    numeric = [*metrics, "epochs", "wall_s"]
    keys = by or ["_all"]
    frame = table.assign(_all="all") if not by else table
    grouped = frame.groupby(keys, sort=False, dropna=False)
    result = grouped[numeric].mean()
    spread = grouped[numeric].std(ddof=1)
    result = result.join(spread.add_suffix("_std"))
    result["runs"] = grouped.size()
    result["completed"] = grouped["status"].apply(lambda s: int((s == "completed").sum()))
    if BASELINE_COLUMN in table:
        result[BASELINE_COLUMN] = grouped[BASELINE_COLUMN].first()
    result[DIAGNOSTICS_COLUMN] = grouped[DIAGNOSTICS_COLUMN].apply(_codes_in_any)
    return result.reset_index()


def _codes_in_any(cells: pd.Series) -> str:
    """The diagnostics codes found in any run of a group, each once."""
    codes = [code for cell in cells.dropna() for code in str(cell).split(", ") if code]
    return ", ".join(dict.fromkeys(codes))


__all__ = ["BASELINE_COLUMN", "DIAGNOSTICS_COLUMN", "FOLD_KEY", "REPEATS", "group_table", "settings_of"]
