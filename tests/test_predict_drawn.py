"""nnexp-predict --drawn prepares a drawing as the data set's digits were; one warning line says when an
image looks unlike the training images; summary.json's "best" comes from evaluated values only (issue 26).

Runs are trained in this process (`nnexp.run`): a short digits run (3 epochs) and a tiny MNIST-shaped run on
data.synthetic's random pixels (the framing of MNIST is what is tested there, not its accuracy). Drawings
are PNGs written here with PIL: scikit-learn's digits enlarged and put at random places on white paper,
a "1" drawn with a pen off-centre, a thin-pen "0" on a large canvas.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

import nnexp
from conftest import exit_code_of, write_fish_csv
from nnexp.data.digits import PIXEL_MAX, digits_arrays
from nnexp.look.drawn import FRAMES, ink_of
from nnexp.look.predict import load_image, main
from nnexp.look.report import _record_of
from nnexp.look.saved import load_saved_run
from nnexp.look.unlike_training import TRAINING_MEAN, unlike_training

PAPER = 200  # side of the canvas the digits are drawn on
GLYPH = 60  # side a digit is drawn at: 7.5 times the data's 8


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("digits") / "run"
    return nnexp.run(["trainer.epochs=3", "outputs.views=false"], output_dir=folder).run_dir


@pytest.fixture(scope="module")
def mnist_run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("mnist") / "run"
    overrides = ["data=mnist", "data.synthetic=true", "data.synthetic_sizes=[200,50]", "data.val_size=40",
                 "trainer.epochs=1", "outputs.views=false", "device=cpu"]  # fmt: skip
    return nnexp.run(overrides, output_dir=folder).run_dir


def on_paper(levels: np.ndarray, place: tuple[int, int], side: int = GLYPH, size: int = PAPER) -> Image.Image:
    """A digit (grey levels 0..16) drawn `side` pixels large, dark ink on a white canvas, at `place`."""
    glyph = Image.fromarray(np.round(levels * 255 / PIXEL_MAX).astype(np.uint8)).resize(
        (side, side), Image.BILINEAR
    )
    canvas = Image.new("L", (size, size), 0)
    canvas.paste(glyph, place)
    return Image.fromarray(255 - np.asarray(canvas))


def pen_one(
    size: tuple[int, int] = (300, 200), at: tuple[int, int] = (40, 30), height: int = 90
) -> Image.Image:
    """A "1" drawn with a 9-pixel pen, dark on white, near the top left of a `size` canvas."""
    image = Image.new("L", size, 255)
    draw = ImageDraw.Draw(image)
    x, y = at
    draw.line([(x, y + height // 5), (x + height // 5, y), (x + height // 5, y + height)], fill=0, width=9)
    return image


def main_exit(*args: object) -> int:
    return exit_code_of(main, *args)


def test_digits_drawn_anywhere_on_white_paper_are_classified_as_the_originals_only_with_drawn(
    digits_run, tmp_path
):
    saved = load_saved_run(digits_run)
    images, labels = digits_arrays()
    rng = np.random.default_rng(0)
    chosen = rng.choice(len(images), 60, replace=False)
    paths = []
    for k, row in enumerate(chosen):
        place = (int(rng.integers(0, PAPER - GLYPH)), int(rng.integers(0, PAPER - GLYPH)))
        paths.append(tmp_path / f"drawn{k}.png")
        on_paper(images[row], place).save(paths[-1])

    def accuracy(batch: torch.Tensor) -> float:
        with torch.inference_mode():
            return float((saved.model(batch).argmax(dim=1).numpy() == labels[chosen]).mean())

    original = accuracy(torch.tensor(images[chosen][:, None] / PIXEL_MAX, dtype=torch.float32))
    said: list[str] = []
    inverted = accuracy(
        torch.stack([load_image(p, saved.spec, invert=True, warn=said.append) for p in paths])
    )
    assert len(said) == len(paths)  # every one warned about: 200x200 is 25 times the 8x8
    said.clear()
    done: list[str] = []
    drawn = accuracy(torch.stack([load_image(p, saved.spec, warn=said.append, drawn=True, done=done.append)
                                  for p in paths]))  # fmt: skip
    assert said == [] and len(done) == len(paths)
    assert done[0].startswith(f"{paths[0]}: inverted (a light background), cropped to the ink (")
    assert original >= 0.8, original
    assert drawn >= original - 0.12 and inverted <= 0.4, (original, drawn, inverted)


def test_a_drawn_digit_fills_the_frame_as_the_digits_do_and_its_preparation_is_one_line(
    digits_run, tmp_path, capsys
):
    path = tmp_path / "one.png"
    pen_one().save(path)
    assert main_exit(digits_run, path, "--drawn") == 0
    out, err = capsys.readouterr()
    assert err == ""
    line = next(line for line in out.splitlines() if line.startswith(f"{path}: "))
    assert "inverted (a light background), cropped to the ink" in line
    assert "its ink's box centred in 8x8" in line and "as scikit-learn's digits were" in line
    assert "1 predictions" in out

    prepared = load_image(path, load_saved_run(digits_run).spec, drawn=True, done=lambda _: None)[0].numpy()
    ink = ink_of(prepared)
    assert (ink.top, ink.bottom) == (0, 8)  # its height fills the frame, as every one of the digits' does
    assert ink.width < 8 and abs((ink.left + ink.right) / 2 - 4) <= 0.5  # narrower, and centred
    # the same drawing white on black, and in 16-bit, palette and transparent files: the same input
    light = Image.fromarray(255 - np.asarray(pen_one()))
    variants = {
        "white on black": light,
        "16-bit": Image.fromarray(np.asarray(pen_one()).astype(np.uint16) * 257),
        "palette": pen_one().convert("P"),
        "alpha": Image.merge("LA", [pen_one(), Image.new("L", (300, 200), 255)]),
    }
    for kind, image in variants.items():
        image.save(tmp_path / "variant.png")
        again = load_image(tmp_path / "variant.png", load_saved_run(digits_run).spec, drawn=True, done=print)
        np.testing.assert_allclose(again[0].numpy(), prepared, atol=1.01 / 255, err_msg=kind)
    assert "inverted" not in capsys.readouterr().out.splitlines()[0]  # light on dark: left as it was


def test_an_mnist_run_gets_the_drawing_in_a_20_pixel_box_centred_by_its_mass(mnist_run, tmp_path, capsys):
    saved = load_saved_run(mnist_run)
    path = tmp_path / "one.png"
    pen_one(size=(400, 500), at=(250, 300), height=150).save(path)  # bottom right of a tall canvas
    done: list[str] = []
    prepared = load_image(path, saved.spec, drawn=True, done=done.append, warn=pytest.fail)[0].numpy()
    assert prepared.shape == (28, 28)
    assert "its centre of mass centred in 28x28" in done[0] and "as MNIST's digits were" in done[0]
    glyph = ink_of(prepared)
    assert max(glyph.height, glyph.width) == 20  # the longer side fills the 20x20 box
    rows, columns = np.indices(prepared.shape)
    mass = ((prepared * rows).sum() / prepared.sum(), (prepared * columns).sum() / prepared.sum())
    assert abs(mass[0] - 13.5) <= 0.5 and abs(mass[1] - 13.5) <= 0.5, mass  # whole pixels, as MNIST's
    assert main_exit(mnist_run, path, "--drawn") == 0
    assert "1 predictions" in capsys.readouterr().out


def test_an_mnist_sized_image_given_to_the_digits_model_gets_one_warning_and_a_prediction(
    digits_run, tmp_path, capsys
):
    levels = digits_arrays()[0][7]
    glyph = Image.fromarray(np.round(levels * 255 / PIXEL_MAX).astype(np.uint8)).resize(
        (20, 20), Image.BILINEAR
    )
    mnist_like = Image.new("L", (28, 28), 0)
    mnist_like.paste(glyph, (4, 4))  # MNIST's framing: a 20x20 box in the middle of 28x28
    path = tmp_path / "mnist_like.png"
    mnist_like.save(path)
    assert main_exit(digits_run, path) == 0
    out, err = capsys.readouterr()
    assert "1 predictions" in out
    assert err.count("\n") == 1 and err.startswith(
        f"nnexp: warning: {path} is 28x28 pixels, the size of MNIST"
    )
    assert "trained on 8x8 images (digits)" in err and "pass --drawn" in err
    assert main_exit(digits_run, path, "--drawn") == 0
    assert capsys.readouterr().err == ""


def test_each_unlike_thing_is_one_line_the_first_that_holds(digits_run, tmp_path, capsys):
    small = Image.fromarray(255 - np.asarray(on_paper(digits_arrays()[0][3], (2, 40), side=20, size=64)))
    corner = tmp_path / "corner.png"  # a light digit, 20 pixels large, in the bottom left of 64x64
    small.save(corner)
    assert main_exit(digits_run, corner) == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert "its ink fills 31% of the image where scikit-learn's digits fill 100%" in err
    assert "off the centre" in err and "pass --drawn" in err
    paper = tmp_path / "corner_on_paper.png"  # also dark on white: the background is said first, alone
    Image.fromarray(255 - np.asarray(small)).save(paper)
    assert main_exit(digits_run, paper) == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{paper} has a light background" in err and "--drawn" in err

    thin = Image.new("L", (400, 400), 255)  # a "0" drawn with a 2-pixel pen: nearly nothing left at 8x8
    ImageDraw.Draw(thin).ellipse([60, 40, 340, 360], outline=0, width=2)
    thin.save(tmp_path / "thin.png")
    assert main_exit(digits_run, tmp_path / "thin.png", "--drawn") == 0
    err = capsys.readouterr().err
    assert (
        err.count("\n") == 1 and "its mean pixel is" in err and "far fainter; draw with a thicker pen" in err
    )
    blank = tmp_path / "blank.png"
    Image.new("L", (100, 100), 255).save(blank)
    assert main_exit(digits_run, blank, "--drawn") == 0
    out, err = capsys.readouterr()
    assert f"{blank}: inverted (a light background), no ink as bright as 0.1 of white: resized whole" in out
    assert "far fainter" in err


def test_no_digit_of_the_data_set_is_called_unlike_its_training_images(digits_run):
    images = digits_arrays()[0]
    assert TRAINING_MEAN["digits"] == pytest.approx(images.mean() / PIXEL_MAX, abs=1e-4)
    spec = load_saved_run(digits_run).spec
    for levels in images:
        pixels = (levels / PIXEL_MAX).astype(np.float32)
        assert unlike_training("d.png", pixels[..., None], pixels[None], spec, False, False) is None
    assert FRAMES["digits"].size == spec.input_shape[-1]


def test_untrusted_images_with_drawn_are_one_line_exit_2_and_nothing_written(digits_run, tmp_path, capsys):
    from test_predict_images import bomb_png

    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    bomb = bomb_png(tmp_path / "bomb.png", 20_000, 20_000)
    for bad, said in ((broken, "not a readable PNG or JPEG image"), (bomb, "over nnexp-predict's limit")):
        before = sorted(tmp_path.iterdir())
        assert main_exit(digits_run, bad, "--drawn", "--out", tmp_path / "out.csv") == 2
        out, err = capsys.readouterr()
        assert err.count("\n") == 1 and err.startswith("nnexp: error: ") and said in err, err
        assert "Traceback" not in err and out == "" and sorted(tmp_path.iterdir()) == before


def test_drawn_for_a_run_that_reads_no_images_is_one_line_exit_2(session_runs, tmp_path, capsys):
    fish = write_fish_csv(tmp_path / "Fish.csv")
    run = session_runs("experiment=fish_linreg", f"data.path={fish}", "trainer.epochs=3")
    assert main_exit(run, fish, "--drawn") == 2
    err = capsys.readouterr().err
    name = load_saved_run(run).spec.name
    assert err == f"nnexp: error: --drawn: this run ({name}) does not read images; leave out --drawn\n"


# ---- summary.json's best over the epochs -------------------------------------------------------------

TINY = ["trainer.epochs=3", "trainer.max_batches_per_epoch=3", "model.hidden=[16]", "model.dropout=0.5",
        "device=cpu", "outputs.views=false"]  # fmt: skip


def metrics_rows(run: Path) -> list[dict[str, str]]:
    with (run / "metrics.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize(
    ("overrides", "evaluated"),
    [
        ([], "val_"),
        (["trainer.eval_train=true"], ("val_", "train_eval_")),
        (["trainer.eval_train=true", "data.val_fraction=0"], "train_eval_"),
        (["data.val_fraction=0"], None),
    ],
    ids=["val", "val-and-train-eval", "train-eval", "neither"],
)
def test_best_over_the_epochs_is_of_evaluated_columns_only(overrides, evaluated, tmp_path):
    run = nnexp.run([*TINY, *overrides], output_dir=tmp_path / "run").run_dir
    summary = json.loads((run / "summary.json").read_text())
    best = summary["metrics"]["best"]
    assert not [
        column for column in best if column.startswith("train_") and not column.startswith("train_eval_")
    ]
    rows = metrics_rows(run)
    columns = [
        c for c in rows[0] if evaluated and c.startswith(evaluated) and c.endswith(("loss", "accuracy"))
    ]
    assert sorted(best) == sorted(columns)
    for column in columns:
        values = [float(row[column]) for row in rows if row[column]]
        assert best[column] == pytest.approx(min(values) if column.endswith("loss") else max(values))
    shown = [key for key in _record_of(summary) if key.startswith("best_")]  # nnexp-report's columns
    assert all(key.removeprefix("best_") in best for key in shown)
    assert bool(shown) == bool(best)


def test_a_fifo_is_refused_in_one_line_not_waited_on_alone_or_in_a_folder(digits_run, tmp_path, capsys):
    import os

    folder = tmp_path / "images"
    folder.mkdir()
    Image.fromarray(np.zeros((8, 8), dtype=np.uint8)).save(folder / "a.png")
    os.mkfifo(folder / "fifo.png")  # opening it would wait for a writer that never comes
    for given in (folder / "fifo.png", folder):
        assert main_exit(digits_run, given) == 2
        out, err = capsys.readouterr()
        assert err.count("\n") == 1 and "fifo.png: is not a regular file" in err and out == ""


def test_file_names_are_shown_as_written_not_read_as_markup_or_escape_codes(digits_run, tmp_path, capsys):
    named = tmp_path / "[bold red]x[link=http:__e]\x1b[1m.png"
    Image.fromarray(np.zeros((8, 8), dtype=np.uint8)).save(named)
    assert main_exit(digits_run, named) == 0
    out = capsys.readouterr().out
    assert "[bold red]x[link=http:__e]" in out and "\x1b" not in out


def test_a_sweep_folder_given_for_a_run_is_one_line_naming_one_of_its_runs(digits_run, tmp_path, capsys):
    import shutil

    sweep = tmp_path / "sweep"
    shutil.copytree(digits_run, sweep / "0")
    image = tmp_path / "a.png"
    Image.fromarray(np.zeros((8, 8), dtype=np.uint8)).save(image)
    assert main_exit(sweep, image) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"holds the runs of a sweep, not one run: give one of them, e.g. {sweep / '0'}" in err
