"""`nnexp-predict RUN_DIR INPUT...`: what a finished run's model says about new data.

    nnexp-predict outputs/2026-11-23/08-00-00 new_fish.csv          # a CSV run: rows of its feature columns
    nnexp-predict outputs/2026-11-23/08-00-00 digit.png photo.jpg   # an image run: PNG/JPEG files, any size
    nnexp-predict outputs/2026-11-23/08-00-00 "the time machine"    # a language model: a prefix to continue

Inputs are prepared exactly as the run's training data was: CSV features z-scored with the training rows'
statistics (saved in the checkpoint's data spec), images converted to the training's channels, resized to
its input shape and scaled as its pixels were; with `--drawn`, a drawing is first inverted, cropped, scaled
and centred as the data set's digits were (look/drawn.py). A table is printed; `--out FILE.csv` also
writes it.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

import pandas as pd

from nnexp.data.files import refuse_compressed
from nnexp.data.tabular import as_numbers, refuse_other_separators
from nnexp.data.tasks import task_of
from nnexp.errors import DataError, UserError, environment_fault, exit_with, first_line, unwritable_folder
from nnexp.look import units
from nnexp.look.drawn import FRAMES, frame_of, prepare_drawn, resize
from nnexp.look.whole import write_whole

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
SHOWN_ROWS = 50  # rows printed; --out holds them all


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="nnexp-predict", description="Predictions of a finished run's model for new data."
    )
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a run folder with checkpoint.pt")
    parser.add_argument(
        "inputs", nargs="+", metavar="INPUT", help="a CSV of feature rows, image files (or a folder of "
        "them), or for a language model the text to continue"
    )  # fmt: skip
    parser.add_argument("--out", type=Path, metavar="FILE.csv", help="also write the predictions as CSV")
    parser.add_argument(
        "--invert",
        action="store_true",
        help="images drawn dark on light: invert them (the data is light on dark)",
    )
    parser.add_argument(
        "--drawn",
        action="store_true",
        help="images are drawings (any size, dark on light or light on dark): invert a light background, "
        "crop to the ink, scale and centre it as the data set's digits were (MNIST: 20x20 box, centre of "
        "mass in 28x28)",
    )
    parser.add_argument("--num-tokens", type=int, default=100, help="language models: tokens to add (100)")
    parser.add_argument(
        "--trust", action="append", default=[], metavar="MODULE.NAME",
        help="import this model class the run names (model=custom): a run folder alone never makes nnexp "
        "run code",
    )  # fmt: skip
    args = parser.parse_args(argv)
    try:
        table = predict(
            args.run_dir,
            args.inputs,
            invert=args.invert,
            num_tokens=args.num_tokens,
            trusted=args.trust,
            drawn=args.drawn,
        )
        if args.out is not None:
            check_out(args.out, list(table.columns), args.inputs)
        show(table)
        if args.out is not None:
            write_csv(table, args.out)
            print(f"predictions: {args.out}")
    except UserError as error:
        exit_with(error)


def predict(
    run_dir: Path,
    inputs: list[str],
    invert: bool = False,
    num_tokens: int = 100,
    trusted: Collection[str] = (),
    drawn: bool = False,
) -> pd.DataFrame:
    """The predictions table for `inputs`, by the run's task; a DataError names a wrong input. `trusted`:
    the user's own model class (model=custom) the command names with --trust; `drawn`: images are
    drawings, to prepare as the data set's digits were."""
    from nnexp.look.saved import load_saved_run

    saved = load_saved_run(run_dir, trusted)
    task = task_of(saved.spec.task)
    if drawn and not task.predicts_classes:
        raise DataError(f"--drawn: this run ({saved.spec.name}) does not read images; leave out --drawn")
    if task.generates_text:
        return _continue_text(saved.path, inputs, num_tokens)
    files = _existing_files(inputs)
    shape = tuple(saved.spec.input_shape)
    if (task.predicts_numbers and "features" not in saved.spec.details) or (
        task.predicts_classes and len(shape) != 3
    ):
        # data=synthetic: vectors with no CSV columns to read, or images with no files to read them from
        raise DataError(
            f"{saved.path}: this run's inputs ({'x'.join(map(str, shape))}, {saved.spec.name}) are neither "
            f"named CSV columns nor images, so nnexp-predict has nothing to read new examples from"
        )
    if task.predicts_numbers:
        if len(files) != 1 or files[0].suffix.lower() != ".csv":
            raise DataError(f"{' '.join(inputs)}: {_wants(saved.spec)}")
        return predict_rows(saved, files[0])
    expanded = [image for path in files for image in (_images_in(path) if path.is_dir() else [path])]
    _refuse_special_files(expanded)  # a folder's entries too
    wrong = next((path for path in expanded if path.suffix.lower() not in IMAGE_SUFFIXES), None)
    if wrong is not None or not expanded:
        raise DataError(f"{wrong or inputs[0]}: {_wants(saved.spec)}")
    return predict_images(saved, expanded, invert, drawn)


def _wants(spec: Any) -> str:
    if task_of(spec.task).predicts_numbers:
        features = ", ".join(spec.details.get("features", []))
        return f"this run ({spec.name}) predicts from one CSV file with the columns {features}: give that"
    shape = "x".join(map(str, spec.input_shape))
    return f"this run ({spec.name}) predicts from image files (PNG or JPEG, resized to {shape}): give those"


def _existing_files(inputs: list[str]) -> list[Path]:
    paths = [Path(text) for text in inputs]
    missing = next((path for path in paths if not path.exists()), None)
    if missing is not None:
        raise DataError(f"{missing}: no such file; give the path of an existing file")
    _refuse_special_files(paths)
    return paths


def _refuse_special_files(paths: list[Path]) -> None:
    """A FIFO or a device is not read: opening a FIFO waits for a writer that may never come."""
    special = next((path for path in paths if path.exists() and not (path.is_file() or path.is_dir())), None)
    if special is not None:
        raise DataError(f"{special}: is not a regular file (a FIFO, a socket or a device); give a file")


def _images_in(folder: Path) -> list[Path]:
    return sorted(path for path in folder.iterdir() if path.suffix.lower() in IMAGE_SUFFIXES)


# ---- rows of a CSV ------------------------------------------------------------------------------------


def predict_rows(saved: Any, path: Path) -> pd.DataFrame:
    """One row per CSV row: its features, the predicted target in the data's own units."""
    import torch

    details = saved.spec.details
    features = list(details["features"])
    targets = details["target"] if isinstance(details["target"], list) else [details["target"]]
    table = read_feature_rows(path, features)
    x = torch.tensor(table[features].to_numpy(dtype="float64"), dtype=torch.float64)
    scale = details.get("feature_scale")
    if scale is not None:
        x = (x - torch.tensor(scale["mean"], dtype=torch.float64)) / torch.tensor(
            scale["std"], dtype=torch.float64
        )
    elif str(details.get("normalization", "")).startswith("z-score"):
        raise DataError(
            f"{saved.path} was trained before nnexp kept its feature statistics, so new rows cannot be "
            f"scaled as its training rows were; train the run again"
        )
    with torch.inference_mode():
        y = saved.model(x.float()).reshape(len(x), -1).double()
    result = pd.DataFrame({"file": path.name, "row": range(1, len(table) + 1)})
    for name in features:
        result[name] = table[name].to_numpy()
    predicted = units.in_file_units(y.numpy(), units.target_scale(saved.spec))  # z-scored: back to units
    for column, target in enumerate(targets):
        if target in table.columns:
            result[target] = table[target].to_numpy()
        result[f"predicted_{target}"] = predicted[:, column]
    return result


def read_feature_rows(path: Path, features: list[str]) -> pd.DataFrame:
    """The CSV with its feature columns as floats, or a DataError naming the file, column and cell."""
    refuse_compressed(path, str(path), "give the CSV file")
    try:
        table = pd.read_csv(path, encoding="utf-8-sig", keep_default_na=False, na_values=[""])
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty; give a CSV with a header row and rows") from None
    except (UnicodeDecodeError, pd.errors.ParserError) as error:
        raise DataError(f"{path}: not a readable UTF-8 CSV ({first_line(error)}); save it as one") from None
    if table.empty:
        raise DataError(f"{path}: the file has a header but no rows; add the rows to predict")
    absent = [name for name in features if name not in table.columns]
    if absent:
        refuse_other_separators(table, str(path))
        raise DataError(
            f"{path}: column {absent[0]!r} is missing; the run was trained on the columns "
            f"{', '.join(features)}: add it"
        )
    return as_numbers(table, features, path, "fix the cell")


# ---- image files --------------------------------------------------------------------------------------


def predict_images(saved: Any, paths: list[Path], invert: bool, drawn: bool = False) -> pd.DataFrame:
    """One row per image: the predicted class with its probability, and the runner-up. With `drawn`,
    each image's preparation is said in one line."""
    import torch

    spec = saved.spec
    if drawn and frame_of(spec) is None:
        raise DataError(
            f"--drawn: this run's data ({spec.name}) is not one whose drawings nnexp knows the framing of "
            f"({', '.join(FRAMES)}): leave out --drawn and give images framed as its training images were"
        )
    notes: list[str] = []  # printed once every image is read: a refused image stays the only line
    done: list[str] = []
    batch = torch.stack(
        [load_image(path, spec, invert, notes.append, drawn, done.append) for path in paths]
    )  # (N, C, H, W)
    for note in notes:
        _warn(note)
    for line in done:
        print(line)
    with torch.inference_mode():
        probabilities = torch.softmax(saved.model(batch).float(), dim=1)
    names = [str(name) for name in spec.details.get("classes") or range(spec.num_outputs)]
    top = probabilities.topk(min(2, spec.num_outputs), dim=1)
    rows = []
    for path, values, classes in zip(paths, top.values.tolist(), top.indices.tolist(), strict=True):
        row = {"file": str(path), "predicted": names[classes[0]], "probability": round(values[0], 4)}
        if len(classes) > 1:
            row.update(second=names[classes[1]], second_probability=round(values[1], 4))
        rows.append(row)
    return pd.DataFrame(rows)


def load_image(
    path: Path,
    spec: Any,
    invert: bool = False,
    warn: Callable[[str], None] | None = None,
    drawn: bool = False,
    done: Callable[[str], None] | None = None,
) -> Any:
    """A PNG or JPEG as the model's input (C, H, W): its channels, size and pixel scale as in training.

    Any bit depth, palette, transparency, EXIF rotation (see nnexp.look.images_in). `drawn`: a drawing,
    inverted when its background is light, cropped, scaled and centred as the data set's digits were
    (look/drawn.py), which `done` is told in one line. `warn` gets at most one line, the first thing that
    looks unlike the training images (printed at once when not given)."""
    import torch

    from nnexp.look.images_in import read_pixels
    from nnexp.look.unlike_training import unlike_training

    channels, height, width = spec.input_shape
    scale = spec.details.get("pixel_scale")
    if scale is None or channels not in (1, 3):
        raise DataError(f"{path}: this run's data ({spec.name}) records no pixel scale; train the run again")
    said: list[str] = []  # one line an image: the first thing that looks wrong is the one to fix first
    pixels, found_light = read_pixels(path, channels, (height, width), invert, said.append, drawn)
    frame = frame_of(spec) if drawn else None
    if frame is not None:
        image, how = prepare_drawn(pixels, frame, (height, width))  # (C, H, W) in 0..1
        (done or print)(f"{path}: {'inverted (a light background), ' if found_light else ''}{how}")
    else:
        image = resize(torch.from_numpy(pixels).permute(2, 0, 1)[None], (height, width))[0]
    unlike = unlike_training(path, pixels, image.numpy(), spec, invert, drawn)
    if unlike is not None:
        said.append(unlike)
    if said:
        (warn or _warn)(said[0])
    return ((image * scale["white"] - scale["mean"]) / scale["std"]).float()


def _warn(message: str) -> None:
    sys.stderr.write(f"nnexp: warning: {message}\n")


# ---- a prefix of text ---------------------------------------------------------------------------------


def _continue_text(run_dir: Path, inputs: list[str], num_tokens: int) -> pd.DataFrame:
    from nnexp.look.generate import MAX_TOKENS, generate_from_run

    prefix = " ".join(inputs)
    if len(inputs) == 1 and Path(prefix).is_file():  # a CSV or an image given to a language model
        raise DataError(f"{prefix}: this run is a language model: give the text to continue, in quotes")
    if not 0 <= num_tokens <= MAX_TOKENS:
        raise DataError(f"--num-tokens {num_tokens}: use a number from 0 to {MAX_TOKENS:,}")
    return pd.DataFrame(
        [{"prefix": prefix, "generated": generate_from_run(run_dir, prefix, num_tokens, 0.0)}]
    )


# ---- showing and writing ------------------------------------------------------------------------------


def show(table: pd.DataFrame) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from nnexp.runs.console import PlainLines

    def literal(value: Any) -> Text:
        # File names and a CSV's own column names and values: shown as written, never read as rich markup
        # ("[bold red]x.png") or passed to the terminal as escape codes.
        text = f"{value:.6g}" if isinstance(value, float) else str(value)
        return Text("".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text))

    console = Console() if sys.stdout.isatty() else Console(width=400, file=PlainLines(sys.stdout))
    shown = Table(title=f"{len(table)} predictions", title_justify="left")
    for column in table.columns:
        numeric = pd.api.types.is_numeric_dtype(table[column])
        shown.add_column(literal(column), justify="right" if numeric else "left", overflow="fold")
    for _, row in table.head(SHOWN_ROWS).iterrows():
        shown.add_row(*(literal(value) for value in row))
    console.print(shown)
    if len(table) > SHOWN_ROWS:
        console.print(f"... {len(table) - SHOWN_ROWS} more rows (--out FILE.csv writes them all)")


def check_out(out: Path, header: list[str], inputs: list[str]) -> None:
    """Refuse a --out that would lose something, before anything is written.

    The rule: never a file inside a run folder, never one of the inputs, never a folder; an existing file
    only when its header is the one this command writes for this run (a previous prediction's CSV).
    """
    from nnexp.runs.folder import holds_a_run

    target = out.resolve()
    run = next((folder for folder in target.parents if holds_a_run(folder)), None)
    if run is not None:
        raise DataError(
            f"--out {out}: lies in the run folder {run}, which nnexp never writes into; choose a file "
            f"elsewhere"
        )
    if any(Path(text).exists() and Path(text).resolve() == target for text in inputs):
        raise DataError(f"--out {out}: is one of the inputs; choose another file")
    if out.is_dir():
        raise DataError(f"--out {out}: is a folder; name a file, e.g. {out / 'predictions.csv'}")
    if out.exists() and _header(out) != header:
        raise DataError(
            f"--out {out}: exists and is not a prediction nnexp-predict wrote for this run; choose another "
            f"file or remove it"
        )
    if not target.parent.is_dir():
        raise DataError(f"--out {out}: the folder {target.parent} does not exist; create it first")
    if not os.access(target.parent, os.W_OK):
        raise unwritable_folder(target.parent)  # the machine's refusal: exit code 4


def _header(path: Path) -> list[str] | None:
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            return next(csv.reader(handle), None)
    except (OSError, UnicodeDecodeError, csv.Error):
        return None


def write_csv(table: pd.DataFrame, out: Path) -> None:
    write_whole(out, table.to_csv(index=False))


def console_main() -> None:
    try:
        main()
    except OSError as error:  # a full disk, a device that refuses the write
        if (fault := environment_fault(error, then="run nnexp-predict again")) is not None:
            exit_with(fault)  # exit code 4
        sys.stderr.write(
            f"nnexp: error: cannot write {error.filename or 'the output'}: {error.strerror or error}\n"
        )
        sys.exit(1)


if __name__ == "__main__":
    console_main()


__all__ = [
    "check_out",
    "load_image",
    "main",
    "predict",
    "predict_images",
    "predict_rows",
    "read_feature_rows",
]
