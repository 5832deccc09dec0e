"""A run's own pictures in the units a lecturer reads: fit.png in the data file's units (grams, not
z-scores) with the fish predicted below 0 g in view, and weights.png on one colour scale with its colour bar,
labelled templates and filters large enough to project.

Each test trains a real run in this process (`nnexp.run`), catches every Figure as it is saved, and reads
back what was drawn: axis labels and limits, the points' coordinates, the images' pixels, the texts. Those are
checked against what other code wrote (predictions.csv's columns in the file's units, the CSV itself, the
checkpoint's weights).
"""

from __future__ import annotations

import csv
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import nnexp
from conftest import FISH_HEADER
from nnexp.look import canvas, figures
from nnexp.look.saved import load_saved_run


@pytest.fixture
def drawn(monkeypatch, drawn_here) -> dict[str, Any]:
    """{file name: the Figure saved as it}, for every picture the runs in this test draw (in this process)."""
    figures_by_name: dict[str, Any] = {}
    save_png = canvas.save_png

    def keep(figure, path, *args):
        figures_by_name[Path(path).name] = figure
        return save_png(figure, path, *args)

    monkeypatch.setattr(figures, "save_png", keep)
    return figures_by_name


def write_weighed_fish(path: Path, rows: int = 120, seed: int = 0, weightless: int = 0) -> Path:
    """A fish-market CSV whose weights grow as height squared times width, as a fish's do, so a linear fit
    on Height and Width predicts the smallest fish below 0 g, as it does on the real Fish.csv; its first
    `weightless` fish weigh 0 g (the real file has one)."""
    rng = random.Random(seed)
    lines = [FISH_HEADER]
    for row in range(rows):
        height = rng.uniform(1.5, 18)
        width = height * rng.uniform(0.35, 0.6)
        weight = 0.25 * height**2 * width * rng.uniform(0.9, 1.1) if row >= weightless else 0.0
        length = 3 * height
        lines.append(
            f"Perch,{weight:.1f},{length:.1f},{length + 2:.1f},{length + 4:.1f},{height:.4f},{width:.4f}"
        )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8-sig")
    return path


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        return list(csv.DictReader(handle))


def scatter_of(axis: Any, label: str) -> np.ndarray:
    """(N, 2) the points of the scatter labelled `label`."""
    (points,) = [c for c in axis.collections if c.get_label() == label]
    return np.asarray(points.get_offsets())


def test_fit_is_drawn_in_grams_and_shows_the_fish_predicted_below_zero(tmp_path, drawn):
    fish = write_weighed_fish(tmp_path / "Fish.csv", weightless=12)
    run = nnexp.run(
        ["experiment=fish_linreg", f"data.path={fish}", "trainer.epochs=20"], output_dir=tmp_path / "run"
    )
    rows = read_rows(run.run_dir / "predictions.csv")
    true = np.array([float(row["Weight"]) for row in rows])  # grams, as predictions.csv has them
    predicted = np.array([float(row["predicted_Weight"]) for row in rows])
    below = int((predicted < 0).sum())
    # the lesson is there to be shown; a 0 g fish comes back from float32 z-scores a hair off 0
    assert below > 0 and abs(true.min()) < 1e-3

    figure = drawn["fit.png"]
    axis = figure.axes[0]
    assert axis.get_xlabel() == "true Weight" and axis.get_ylabel() == "predicted Weight"  # no "z-score"
    network = scatter_of(axis, "network")
    # each circle is a row of predictions.csv, in grams: x its Weight, y its predicted_Weight
    assert network[:, 0] == pytest.approx(true, abs=0.05)
    assert network[:, 1] == pytest.approx(predicted, rel=1e-4, abs=0.05)
    # ... and the weights are the CSV's own
    in_file = {round(float(row["Weight"]), 1) for row in read_rows(fish)}
    assert {round(value, 1) for value in true} <= in_file
    # the negative predictions are inside the axes, above a red line at 0, and counted in the title
    low, high = axis.get_ylim()
    assert low < predicted.min() < 0 < true.max() < high
    zero = [line for line in axis.get_lines() if line.get_label().startswith("0: no true Weight")]
    assert len(zero) == 1 and set(zero[0].get_ydata()) == {0}
    assert f"{below} of {len(rows)} predicted below 0" in axis.get_title()
    assert axis.get_xlim() == axis.get_ylim()  # one scale on both axes: the diagonal is a perfect fit
    assert (run.run_dir / "fit.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_one_feature_curve_is_drawn_over_the_features_own_values(tmp_path, drawn):
    fish = write_weighed_fish(tmp_path / "Fish.csv")
    overrides = ["experiment=fish_linreg", f"data.path={fish}", "data.features=[Width]", "trainer.epochs=10"]
    run = nnexp.run(overrides, output_dir=tmp_path / "run")
    curve = drawn["fit.png"].axes[1]
    assert curve.get_xlabel() == "Width" and curve.get_ylabel() == "Weight"
    widths = np.array([float(row["Width"]) for row in read_rows(fish)])
    weights = np.array([float(row["Weight"]) for row in read_rows(fish)])
    test_rows = scatter_of(curve, "test rows")
    assert len(test_rows) == 50
    # every test fish is drawn where the file has it: its Width in cm, its Weight in grams
    assert np.abs(test_rows[:, 0][:, None] - widths[None, :]).min(axis=1).max() < 1e-3
    assert np.abs(test_rows[:, 1][:, None] - weights[None, :]).min(axis=1).max() < 0.05
    (network,) = [line for line in curve.get_lines() if line.get_label() == "network"]
    x, y = network.get_xdata(), network.get_ydata()
    assert x.min() == pytest.approx(widths.min(), abs=1e-3) and x.max() == pytest.approx(
        widths.max(), abs=1e-3
    )
    # the curve is the saved model's answer, in grams
    saved = load_saved_run(run.run_dir)
    scale, target = saved.spec.details["feature_scale"], saved.spec.details["target_scale"]
    import torch

    with torch.no_grad():
        z = saved.model(torch.tensor((x[:, None] - scale["mean"][0]) / scale["std"][0], dtype=torch.float32))
    assert y == pytest.approx(z.numpy().ravel() * target["std"] + target["mean"], rel=1e-3, abs=0.1)


def test_several_targets_are_each_put_back_in_their_own_units(tmp_path, drawn):
    fish = write_weighed_fish(tmp_path / "Fish.csv", rows=80)
    overrides = [
        "experiment=fish_linreg",
        f"data.path={fish}",
        "data.target=[Weight,Length1]",
        "trainer.epochs=3",
    ]
    run = nnexp.run(overrides, output_dir=tmp_path / "run")
    rows = read_rows(run.run_dir / "predictions.csv")
    axis = drawn["fit.png"].axes[0]
    assert axis.get_ylabel() == "predicted Weight, Length1"
    network = scatter_of(axis, "network")
    # rows then targets, as predictions.csv has them side by side
    expected = [
        (float(row[name]), float(row[f"predicted_{name}"])) for row in rows for name in ("Weight", "Length1")
    ]
    assert network == pytest.approx(np.array(expected), rel=1e-4, abs=0.05)


def pixels_of(figure: Any, gid: str) -> np.ndarray:
    (artist,) = [a for a in figure.get_children() if a.get_gid() == gid]
    return np.asarray(artist.rgba)


def title_of(figure: Any) -> str:
    return figure._suptitle.get_text()  # Figure.get_suptitle() from matplotlib 3.8; nnexp takes 3.7


def texts_of(figure: Any, gid: str) -> list[str]:
    return [text.get_text() for text in figure.texts if text.get_gid() == gid]


def test_softmax_templates_share_one_colour_scale_with_a_bar_and_are_named_by_digit(tmp_path, drawn):
    overrides = ["model=linear", "trainer.epochs=1", "trainer.max_batches_per_epoch=3"]
    run = nnexp.run(overrides, output_dir=tmp_path / "run")
    figure = drawn["weights.png"]
    weight = load_saved_run(run.run_dir).model.linear.weight.detach().numpy()  # (10, 64)
    scale = float(np.abs(weight).max())
    assert texts_of(figure, "template name") == [str(digit) for digit in range(10)]
    assert "each class's template" in title_of(figure)
    # one scale for all: every weight's colour is RdBu_r at 0.5 + w / (2 * the largest |w|), and no other
    grid = pixels_of(figure, "weights")
    expected = canvas.colour_map("RdBu_r")(0.5 + weight / (2 * scale), bytes=True).reshape(-1, 4)
    seen = {tuple(pixel) for pixel in grid.reshape(-1, 4)} - {(255, 255, 255, 255)}  # white: the gaps
    assert seen == {tuple(pixel) for pixel in expected}
    # the colour bar: +scale at its top, -scale at its bottom, labelled with both and 0
    bar = pixels_of(figure, "colour bar")
    assert tuple(bar[0, 0]) == tuple(canvas.colour_map("RdBu_r")(1.0, bytes=True))
    assert tuple(bar[-1, 0]) == tuple(canvas.colour_map("RdBu_r")(0.0, bytes=True))
    assert texts_of(figure, "colour bar tick") == [f"{scale:.3g}", "0", f"{-scale:.3g}"]
    assert texts_of(figure, "colour bar label") == ["weight"]


def first_tile_width(grid: np.ndarray) -> int:
    """The width in pixels of the first picture in the grid (a run of pixels that are not white)."""
    row = grid[np.argmax((grid[..., :3] != 255).any(axis=(1, 2)))]  # the first row with a picture in it
    painted = (row[:, :3] != 255).any(axis=1)
    start = int(np.argmax(painted))
    return int(np.argmin(painted[start:])) or len(painted) - start


def test_conv_filters_are_drawn_large_enough_to_project(tmp_path, drawn):
    """8 filters of 3x3 (model=cnn on the digits): at least 60 pixels a filter in the saved PNG."""
    run = nnexp.run(
        ["model=cnn", "trainer.epochs=1", "trainer.max_batches_per_epoch=2"], output_dir=tmp_path / "run"
    )
    figure = drawn["weights.png"]
    grid = pixels_of(figure, "weights")
    assert first_tile_width(grid) >= 60
    assert "all 8 filters" in title_of(figure)
    from PIL import Image

    with Image.open(run.run_dir / "weights.png") as png:
        assert png.width >= grid.shape[1] and png.height >= grid.shape[0]


def test_colour_filters_are_drawn_in_colour_on_one_scale(tmp_path, drawn):
    """Conv filters on colour images (5x5, 3 channels): drawn as colours, mid grey 0, a grey bar."""
    overrides = [
        "data=synthetic", "data.task=classification", "data.shape=[3,16,16]", "data.num_outputs=4",
        "data.target_rule=random", "data.train_size=64", "data.test_size=32",
        "model=cnn", "model.kernel_size=5", "model.padding=2", "trainer.epochs=1",
    ]  # fmt: skip
    run = nnexp.run(overrides, output_dir=tmp_path / "run")
    figure = drawn["weights.png"]
    weight = load_saved_run(run.run_dir).model.state_dict()
    (filters,) = [value for name, value in weight.items() if value.ndim == 4]
    scale = float(filters.abs().max())
    grid = pixels_of(figure, "weights")
    assert (grid[..., 0] != grid[..., 1]).any()  # colours, not grey
    expected = np.round(255 * (0.5 + filters.numpy().transpose(0, 2, 3, 1) / (2 * scale))).astype(np.uint8)
    seen = {tuple(pixel[:3]) for pixel in grid.reshape(-1, 4)} - {(255, 255, 255)}
    assert seen == {tuple(pixel) for pixel in expected.reshape(-1, 3)}
    assert texts_of(figure, "colour bar label") == ["each channel's weight"]
    assert texts_of(figure, "colour bar tick") == [f"{scale:.3g}", "0", f"{-scale:.3g}"]
