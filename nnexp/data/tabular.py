"""Regression on the numeric columns of a CSV file (the fish-market data is a preset of this)."""

from __future__ import annotations

import difflib
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nnexp.data import DataBundle, DataSpec, TensorSplit, shuffled_split
from nnexp.data.files import refuse_compressed
from nnexp.data.folds import hold_out
from nnexp.errors import DataError

log = logging.getLogger("nnexp")


def load_csv(
    path: str,
    features: list[str] | str,
    target: list[str] | str,
    test_size: float | int,
    split_seed: int,
    val_fraction: float,
    normalize_target: bool,
    normalize_features: bool = True,
    scale_on: str = "train",
    std_ddof: int = 0,
    folds: int | None = None,
    fold: int | None = None,
) -> DataBundle:
    """Read `features` -> `target` from `path`; z-score both with statistics of the training rows.

    `target` is one column or a list (one model output per column); `features="all"` takes every
    numeric column but the targets. `test_size=0` keeps every row for training (no test split);
    `scale_on="all"` fits the z-scores on every row, as the lecture notebooks do, instead of the
    training rows only. `std_ddof=1` divides by the sample std (pandas' `df.std()`, as the lectures
    did) instead of the population std (scikit-learn's StandardScaler).
    """
    targets = [target] if isinstance(target, str) else list(target)
    _refuse_repeats("data.target", targets)
    if features != "all":
        _refuse_repeats("data.features", list(features))
        both = [name for name in targets if name in features]
        if both:
            raise DataError(
                f"data.target={both[0]!r} is also in data.features: the model would read the answer it is "
                f"asked for; drop {both[0]!r} from data.features"
            )
    if features == "all":
        table = read_numeric_columns(Path(path), targets)
        features = numeric_columns(table, exclude=targets)
        if not features:
            raise DataError(
                f"data.features=all: {path} has no numeric column beside the target(s) "
                f"{some_names(targets)}; list the input columns in data.features"
            )
        log.info("data.features=all: %d columns: %s", len(features), some_names(features))
    features = list(features)
    table = read_numeric_columns(Path(path), [*features, *targets])
    # Read and normalised in 64 bits, trained on in 32: a column too large for those is named below.
    x = torch.tensor(table[features].to_numpy(), dtype=torch.float64)
    y = torch.tensor(table[targets].to_numpy(), dtype=torch.float64)

    if test_size == 0:  # every row trains, in the file's order (trainer.shuffle=false keeps it)
        train_rows, test_rows = np.arange(len(table)), None
    else:
        train_rows, test_rows = shuffled_split(len(table), test_size, split_seed)
    # data.folds: fold `fold` of the train+val rows validates (data/folds.py), else data.val_fraction
    train_rows, val_rows, fold_details = hold_out(
        train_rows, val_fraction, split_seed, folds=folds, fold=fold
    )
    # One row has no spread to normalise by; unnormalised, it is seed 001's one-example lesson.
    if len(train_rows) < (2 if normalize_features or normalize_target else 1):
        raise DataError(
            f"{path}: {len(table)} data rows leave {len(train_rows)} for training after the test and "
            f"validation splits; use a file with more rows or a smaller data.test_size"
        )

    details: dict[str, Any] = {
        "path": str(Path(path).resolve()),
        "features": features,
        "target": targets[0] if len(targets) == 1 else targets,
        "normalization": "none: the columns as they are in the file",
        **fold_details,
    }
    if test_rows is None:  # said in the results table: no score here is on rows held out from training
        details["test_split"] = NO_TEST_SPLIT + ("" if val_rows is None else " but the validation rows")
    copies = _held_out_copies(table[[*features, *targets]], train_rows, [test_rows, val_rows])
    if copies:
        details["held_out_rows_also_in_training"] = copies
        log.warning(
            "data: %d held-out row(s) of %s are exact copies of training rows: their scores overstate "
            "what the model learned; drop the duplicate rows from the file", copies, path
        )  # fmt: skip
    # The lecture z-scores the whole table before splitting it; the default keeps the held-out rows'
    # statistics out of training, so their scores stay honest.
    fitted_on = slice(None) if scale_on == "all" else train_rows
    rows_named = "every row (data.scale_on=all)" if scale_on == "all" else "the training rows"
    if normalize_features:
        x_mean, x_std = _moments(x[fitted_on], "feature", features, rows_named, std_ddof)
        x = (x - x_mean) / x_std
        details["normalization"] = f"z-score, fitted on {rows_named}"
        # Kept so new rows can be scaled the same way later (nnexp-predict).
        details["feature_scale"] = {"mean": x_mean.tolist(), "std": x_std.tolist()}
    if normalize_target:
        y_mean, y_std = _moments(y[fitted_on], "target", targets, rows_named, std_ddof)
        y = (y - y_mean) / y_std
        if len(targets) == 1:
            details["target_scale"] = {"mean": y_mean.item(), "std": y_std.item()}
        else:
            moments = zip(targets, y_mean.tolist(), y_std.tolist(), strict=True)
            details["target_scale"] = {name: {"mean": m, "std": s} for name, m, s in moments}
    x, y = _as_float32(x, features, path), _as_float32(y, targets, path)

    def split(rows):
        return None if rows is None else TensorSplit(x[rows], y[rows])

    bundle = DataBundle(
        spec=DataSpec(
            name=Path(path).stem,
            task="regression",
            input_shape=(len(features),),
            num_outputs=len(targets),
            details=details,
        ),
        train=split(train_rows),
        val=split(val_rows),
        test=split(test_rows),
    )
    bundle.spec.sizes.update({name: len(part) for name, part in bundle.splits().items()})
    return bundle


NO_TEST_SPLIT = "no test split (data.test_size=0): the model was trained on every row"


SHOWN_NAMES = 8  # column names a message lists before "... and N more"


def some_names(names: list[str], shown: int = SHOWN_NAMES) -> str:
    """`a, b, c`; a long list as its first few and how many more (a 2,000-column CSV is one line)."""
    if len(names) <= shown + 1:
        return ", ".join(names)
    return f"{', '.join(names[:shown])}, ... and {len(names) - shown} more"


def _refuse_repeats(key: str, names: list[str]) -> None:
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise DataError(f"{key} lists {repeated[0]!r} more than once: list each column once")


def numeric_columns(table: Any, exclude: list[str]) -> list[str]:
    """The columns every cell of which reads as a finite number, in the file's order, less `exclude`."""
    import pandas as pd

    numeric = []
    for name in table.columns:
        if name in exclude:
            continue
        values = pd.to_numeric(table[name], errors="coerce").to_numpy(dtype="float64")
        if np.isfinite(values).all():
            numeric.append(str(name))
    return numeric


def read_numeric_columns(path: Path, columns: list[str]):
    """The named columns of a CSV as floats, or a DataError that says which file, column and cell."""
    import pandas as pd

    if path.is_dir():
        raise DataError(f"data.path={path} is a folder; point data.path at the CSV file in it")
    if not path.is_file():
        raise DataError(f"data.path={path}: no such file; point data.path at your CSV file")
    refuse_compressed(path, f"data.path={path}", "point data.path at the CSV file")
    try:
        # utf-8-sig: spreadsheet exports often start with a byte-order mark.
        # Only a blank cell is missing: "nan" or "NA" written in a cell is named as written.
        table = pd.read_csv(path, encoding="utf-8-sig", keep_default_na=False, na_values=[""])
    except pd.errors.EmptyDataError:
        raise DataError(
            f"data.path={path}: the file is empty; point data.path at a CSV with a header row"
        ) from None
    except UnicodeDecodeError:
        raise DataError(
            f"data.path={path}: not UTF-8 text (a spreadsheet's UTF-16 or Latin-1 export?); save it as a "
            f"UTF-8 CSV, e.g. iconv -f UTF-16 -t UTF-8"
        ) from None
    except pd.errors.ParserError as error:
        reason = str(error).splitlines()[0]
        raise DataError(f"data.path={path}: not a readable CSV ({reason})") from None
    if table.empty:
        raise DataError(f"data.path={path}: the file has a header but no rows")
    header = _header(path)
    twice = sorted({name for name in header if header.count(name) > 1})
    if twice:  # pandas would rename the second to "name.1" and train on whichever was asked for
        raise DataError(f"{path}: the header names column {twice[0]!r} more than once; rename one of them")
    absent = [name for name in columns if name not in table.columns]
    if absent:
        refuse_other_separators(table, f"data.path={path}")
        close = difflib.get_close_matches(str(absent[0]), list(map(str, table.columns)), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise DataError(
            f"column {absent[0]!r} is not in {path}{hint}: choose from the {len(table.columns)} columns "
            f"{some_names(list(map(str, table.columns)))}"
        )
    return as_numbers(table, columns, path, "fix the cell or drop the column")


def refuse_other_separators(table: Any, named: str) -> None:
    """A file read as one column whose header holds a ';', tab or '|' was written with that separator
    (a spreadsheet in a comma-decimal locale): say so, rather than that a column is missing."""
    if len(table.columns) != 1:
        return
    separator = next((mark for mark in (";", "\t", "|") if mark in str(table.columns[0])), None)
    if separator is not None:
        raise DataError(
            f"{named}: the columns are separated by {separator!r}, not commas; save the file as "
            f"comma-separated CSV"
        )


def as_numbers(table: Any, columns: list[str], path: Path, fix: str) -> Any:
    """The table with `columns` as float64, or a DataError naming the file, column, row and cell."""
    import pandas as pd

    for name in columns:
        numbers = pd.to_numeric(table[name], errors="coerce")
        bad = ~np.isfinite(numbers.to_numpy(dtype="float64"))
        if bad.any():
            row = int(bad.argmax())
            cell = table[name][row]
            held = "an empty cell" if pd.isna(cell) else f"{str(cell)!r}"
            raise DataError(
                f"{path}: column {name!r} holds {held} at data row {row + 1}, not a finite number; {fix}"
            )
        table[name] = numbers.astype("float64")
    return table


def _header(path: Path) -> list[str]:
    """The column names as the file spells them (pandas renames repeated ones)."""
    import csv

    with path.open(encoding="utf-8-sig", newline="") as handle:
        return [name.strip() for name in next(csv.reader(handle), [])]


def _held_out_copies(table: Any, train_rows: Any, held_out: list[Any]) -> int:
    """How many test and validation rows repeat a training row exactly (features and target): a leak."""
    seen = set(table.iloc[list(train_rows)].itertuples(index=False))
    return sum(
        row in seen
        for rows in held_out
        if rows is not None
        for row in table.iloc[list(rows)].itertuples(index=False)
    )


def _as_float32(values: torch.Tensor, names: list[str], path: str) -> torch.Tensor:
    narrowed = values.float()
    overflowing = (~torch.isfinite(narrowed).all(dim=0)).nonzero().flatten().tolist()
    if overflowing:
        column = overflowing[0]
        raise DataError(
            f"{path}: column {names[column]!r} holds values too large for the model's 32-bit numbers "
            f"(up to {values[:, column].abs().max().item():.3g}); rescale the column, e.g. to thousands"
        )
    return narrowed


def _moments(
    values: torch.Tensor, kind: str, names: list[str], rows_named: str = "the training rows", ddof: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    # Population std (ddof 0) by default, as scikit-learn's StandardScaler; ddof 1 as pandas' df.std().
    # Computed on the columns divided by their largest magnitude: squares near 1e300 would overflow to inf.
    scale = values.abs().amax(dim=0).clamp_min(torch.finfo(values.dtype).tiny)
    mean, std = (values / scale).mean(dim=0) * scale, (values / scale).std(dim=0, correction=ddof) * scale
    constant = (std == 0).nonzero().flatten().tolist()
    if constant and kind == "target":  # one value to predict: nothing to learn (a classifier: one class)
        raise DataError(
            f"target column {names[constant[0]]!r} holds the one value {values[0, constant[0]].item():g} in "
            f"{rows_named}: a model needs a target that varies, and a classifier at least two classes in "
            f"it; name another column in data.target, or use rows where {names[constant[0]]!r} varies"
        )
    if constant:
        raise DataError(
            f"{kind} column {names[constant[0]]!r} is constant on {rows_named}, "
            f"so it cannot be normalised; drop it"
        )
    return mean, std
