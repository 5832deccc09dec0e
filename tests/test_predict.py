"""nnexp-predict: a saved run's model on new data gives what the model gives on the same inputs in training.

Two short runs, trained in this process as `nnexp` trains them (digits, 2 epochs; a fish-shaped CSV,
3 epochs), then nnexp-predict (its main, in this process) on
files written here in their real formats: a CSV of the run's own test rows as they stand in the data file,
and PNGs of test digits drawn 8 times larger. The expected answers come from the model on the tensors the
run's own data loader builds (what training and evaluation fed it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from PIL import Image

import nnexp
from conftest import copy_run, exit_code_of, write_fish_csv
from nnexp.data import shuffled_split
from nnexp.errors import DataError, UserError
from nnexp.look.predict import main
from nnexp.look.saved import load_saved_run
from nnexp.runs.checkpoint import load_checkpoint


def trained(root: Path, *overrides: str) -> Path:
    result = nnexp.run(list(overrides), output_dir=root / "run")
    assert result.status == "completed"
    return result.run_dir


def data_of(run: Path):
    """The run's data as its training built it: the same rows, splits and scaling."""
    config = OmegaConf.load(run / ".hydra" / "config.yaml")
    return config, instantiate(config.data, _convert_="all")


@pytest.fixture
def digits_run(session_runs) -> Path:
    return session_runs("trainer.epochs=2")


@pytest.fixture(scope="module")
def fish_csv_file(tmp_path_factory) -> Path:
    return write_fish_csv(tmp_path_factory.mktemp("fish") / "Fish.csv")


@pytest.fixture
def fish_run(session_runs, fish_csv_file) -> Path:
    return session_runs("experiment=fish_linreg", f"data.path={fish_csv_file}", "trainer.epochs=3")


@dataclass
class Predicted:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def predict_cli(capsys):
    """`nnexp-predict ARGS` in this process (its main): the exit code and what it printed."""

    def predict(*args: object) -> Predicted:
        capsys.readouterr()
        code = main_exit(*args)
        printed = capsys.readouterr()
        return Predicted(code, printed.out, printed.err)

    return predict


def test_a_csv_of_the_runs_own_test_rows_gets_the_models_predictions_in_the_targets_units(
    fish_run, tmp_path, predict_cli
):
    config, bundle = data_of(fish_run)
    model = load_saved_run(fish_run).model
    scale = bundle.spec.details["target_scale"]
    with torch.inference_mode():
        expected = (model(bundle.test.inputs)[:, 0].double() * scale["std"] + scale["mean"]).numpy()
    table = pd.read_csv(config.data.path, encoding="utf-8-sig")
    _, test_rows = shuffled_split(len(table), config.data.test_size, config.data.split_seed)
    new = tmp_path / "new_fish.csv"
    table.iloc[test_rows].to_csv(new, index=False)  # raw grams and centimetres, as in the data file

    out = tmp_path / "predictions.csv"
    result = predict_cli(fish_run, new, "--out", out)
    assert result.returncode == 0, result.stderr
    written = pd.read_csv(out)
    assert len(written) == len(test_rows) == len(bundle.test)
    np.testing.assert_allclose(written["predicted_Weight"], expected, rtol=1e-5)
    assert f"{len(test_rows)} predictions" in result.stdout and "predicted_Weight" in result.stdout
    # The model beats guessing the mean: the predictions are of the target, in its units.
    error = np.mean((written["predicted_Weight"] - written["Weight"]) ** 2)
    assert error < np.var(written["Weight"])
    recorded = pd.read_csv(fish_run / "predictions.csv")  # what the run itself recorded for its test rows
    np.testing.assert_allclose(sorted(recorded["predicted_Weight"]), sorted(expected), rtol=1e-4)


def test_a_run_with_two_targets_predicts_each_in_its_own_units(tmp_path, predict_cli):
    csv = write_fish_csv(tmp_path / "Fish.csv")
    run = trained(tmp_path, "data=csv", f"data.path={csv}", "data.features=[Length1,Height]",
                  "data.target=[Weight,Width]", "trainer.epochs=2")  # fmt: skip
    config, bundle = data_of(run)
    model = load_saved_run(run).model
    scales = bundle.spec.details["target_scale"]
    with torch.inference_mode():
        outputs = model(bundle.test.inputs).double()
    out = tmp_path / "two.csv"
    result = predict_cli(run, csv, "--out", out)
    assert result.returncode == 0, result.stderr
    written = pd.read_csv(out)
    table = pd.read_csv(csv)
    _, test_rows = shuffled_split(len(table), config.data.test_size, config.data.split_seed)
    for column, target in enumerate(["Weight", "Width"]):
        expected = outputs[:, column] * scales[target]["std"] + scales[target]["mean"]
        got = written[f"predicted_{target}"].to_numpy()[test_rows]
        np.testing.assert_allclose(got, expected.numpy(), rtol=1e-4)
        recorded = pd.read_csv(run / "predictions.csv")  # the run's own record, in the CSV's units too
        np.testing.assert_allclose(recorded[f"predicted_{target}"], expected.numpy(), rtol=1e-4)


def digit_png(pixels: torch.Tensor, path: Path, zoom: int = 8) -> Path:
    """A digit (1, 8, 8) scaled to [0, 1] as a grey PNG `zoom` times larger: ink bright, as in the data."""
    grey = (pixels[0].numpy() * 255).round().astype(np.uint8)
    Image.fromarray(np.kron(grey, np.ones((zoom, zoom), dtype=np.uint8))).save(path)
    return path


def test_digit_pngs_of_any_size_get_the_class_the_model_gives_the_original_rows(
    digits_run, tmp_path, predict_cli
):
    _, bundle = data_of(digits_run)
    inputs = bundle.test.inputs[:6]  # (6, 1, 8, 8), pixels / 16
    model = load_saved_run(digits_run).model
    with torch.inference_mode():
        probabilities = torch.softmax(model(inputs), dim=1)
    files = [digit_png(image, tmp_path / f"digit{i}.png") for i, image in enumerate(inputs)]
    files.append(digit_png(inputs[0], tmp_path / "small.png", zoom=3))  # 24x24: not a multiple of 8 of it
    Image.open(files[1]).convert("RGB").save(tmp_path / "colour.png")  # three channels, made grey again

    out = tmp_path / "digits.csv"
    result = predict_cli(digits_run, *files[:6], tmp_path / "colour.png", "--out", out)
    assert result.returncode == 0, result.stderr
    written = pd.read_csv(out, dtype={"predicted": str})
    assert list(written["predicted"][:6]) == [str(c) for c in probabilities.argmax(dim=1).tolist()]
    np.testing.assert_allclose(written["probability"][:6], probabilities.max(dim=1).values, atol=0.01)
    assert written["predicted"][6] == written["predicted"][1]  # the RGB copy of digit 1
    small = predict_cli(digits_run, files[6])
    assert small.returncode == 0, small.stderr
    assert "1 predictions" in small.stdout


@pytest.mark.parametrize("normalize", [False, True])
def test_an_mnist_image_is_scaled_as_its_training_was_also_with_data_normalize(normalize, tmp_path):
    """A 28x28 grey PNG of a test image becomes exactly the tensor the run's loader made of it."""
    from nnexp.data.images import load_images, synthetic_tensors
    from nnexp.look.predict import load_image

    options = dict(root=str(tmp_path), download=False, val_size=100, split_seed=3, normalize=normalize)
    bundle = load_images("mnist", **options, synthetic=True, synthetic_sizes=[400, 50])
    raw = synthetic_tensors([400, 50], 10, 3)["test_images"][7]  # (28, 28) uint8, as the loader got it
    Image.fromarray(raw.numpy()).save(tmp_path / "seven.png")
    Image.fromarray(raw.numpy()).convert("RGB").resize((56, 56), Image.NEAREST).save(tmp_path / "big.png")
    for name in ("seven.png", "big.png"):
        image = load_image(tmp_path / name, bundle.spec)
        torch.testing.assert_close(image, bundle.test.inputs[7], atol=1e-5, rtol=0)


def test_a_language_model_run_continues_a_prefix_as_nnexp_generate_does(tmp_path):
    from test_language_models import SMALL, write_book

    from nnexp.look.generate import generate_from_run

    book = write_book(tmp_path / "book.txt")
    run = trained(tmp_path, "experiment=time_machine_rnn", f"data.path={book}", *SMALL)
    out = tmp_path / "continued.csv"
    assert main_exit(run, "the", "time", "--num-tokens", 12, "--out", out) == 0
    [row] = pd.read_csv(out).to_dict("records")
    assert row == {"prefix": "the time", "generated": generate_from_run(run, "the time", 12, 0.0)}
    assert len(row["generated"]) == len("the time") + 12
    assert main_exit(run, book) == 2  # a file, where the text itself is wanted
    assert main_exit(run, "the", "--num-tokens", 99_999_999_999) == 2  # refused at once, not hours of silence


def test_a_previous_prediction_is_overwritten_but_no_other_file(fish_run, tmp_path):
    rows = tmp_path / "rows.csv"
    rows.write_text("Height,Width\n10,4\n12,5\n")
    out = tmp_path / "out.csv"
    assert main_exit(fish_run, rows, "--out", out) == 0
    assert main_exit(fish_run, rows, "--out", out) == 0  # its own earlier output: replaced
    notes = tmp_path / "notes.csv"
    notes.write_text("my,own\n1,2\n")
    assert main_exit(fish_run, rows, "--out", notes) == 2
    assert notes.read_text() == "my,own\n1,2\n"


def main_exit(*args: object) -> int:
    return exit_code_of(main, *args)


@pytest.mark.parametrize(
    ("case", "named"),
    [
        ("missing run", "no such run folder"),
        ("run without checkpoint", "checkpoint.pt does not exist"),
        ("missing column", "column 'Width' is missing"),
        ("semicolon csv", "the columns are separated by ';', not commas"),
        ("non-numeric cell", "column 'Height' holds 'tall' at data row 2"),
        ("empty csv", "the file is empty"),
        ("image for a csv run", "predicts from one CSV file with the columns Height, Width"),
        ("csv for an image run", "predicts from image files"),
        ("unreadable image", "not a readable PNG or JPEG image"),
        ("missing input", "no such file"),
        ("out inside a run", "lies in the run folder"),
        ("out is the input", "is one of the inputs"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(case, named, digits_run, fish_run, tmp_path, capsys):
    rows = tmp_path / "rows.csv"
    rows.write_text("Height,Width\n10,4\n12,5\n")
    bad_image = tmp_path / "broken.png"
    bad_image.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    empty_run = tmp_path / "stopped_run"
    (empty_run / ".hydra").mkdir(parents=True)
    args = {
        "missing run": [tmp_path / "nowhere", rows],
        "run without checkpoint": [empty_run, rows],
        "missing column": [fish_run, write(tmp_path / "a.csv", "Height,Length1\n1,2\n")],
        "semicolon csv": [fish_run, write(tmp_path / "s.csv", "Height;Width\n1,5;2,5\n")],
        "non-numeric cell": [fish_run, write(tmp_path / "b.csv", "Height,Width\n1,2\ntall,3\n")],
        "empty csv": [fish_run, write(tmp_path / "c.csv", "")],
        "image for a csv run": [fish_run, bad_image],
        "csv for an image run": [digits_run, rows],
        "unreadable image": [digits_run, bad_image],
        "missing input": [fish_run, tmp_path / "absent.csv"],
        "out inside a run": [fish_run, rows, "--out", fish_run / "mine.csv"],
        "out is the input": [fish_run, rows, "--out", rows],
    }[case]
    before = sorted(path for path in tmp_path.rglob("*")), sorted(fish_run.iterdir())
    assert main_exit(*args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and named in err and "Traceback" not in err, err
    assert (sorted(path for path in tmp_path.rglob("*")), sorted(fish_run.iterdir())) == before
    assert rows.read_text() == "Height,Width\n10,4\n12,5\n"


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_a_checkpoint_naming_a_torch_class_with_arguments_it_does_not_take_is_one_line(digits_run, tmp_path):
    """torch.nn.Sequential is a class nnexp trusts, but a folder's config can still hand it arguments it
    cannot take: nnexp-predict says so in one line instead of Hydra's traceback."""
    run = copy_run(digits_run, tmp_path / "run")
    checkpoint = torch.load(run / "checkpoint.pt", weights_only=True)
    checkpoint["config"]["model"] = {"_target_": "torch.nn.Sequential", "_args_": [{"no": "module"}]}
    torch.save(checkpoint, run / "checkpoint.pt")
    with pytest.raises(DataError, match=r"checkpoint.pt is not a checkpoint nnexp wrote") as refused:
        load_saved_run(run)
    assert refused.value.exit_code == 2 and "\n" not in str(refused.value)


def test_a_checkpoint_at_a_negative_epoch_is_corrupt(digits_run, tmp_path):
    run = copy_run(digits_run, tmp_path / "run")
    checkpoint = torch.load(run / "checkpoint.pt", weights_only=True)
    checkpoint["epoch"] = -5
    torch.save(checkpoint, run / "checkpoint.pt")
    with pytest.raises(UserError, match=r"corrupt checkpoint .*: it is not a training state nnexp wrote"):
        load_checkpoint(run / "checkpoint.pt")
