"""data=toy2d and the pictures of a model in its data's own space: decision_boundary.png, training.gif
(snapshots taken during training) and activations.png, read back from the files a real run writes."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from PIL import Image

import nnexp
from conftest import nnexp_exit_code, resume_in_process
from nnexp.data.curve import write_curve_csv
from nnexp.data.toy2d import SHAPES, load_toy2d
from nnexp.look.activations import layer_outputs
from nnexp.look.boundary import BOUNDARY_PLOT, TRAINING_GIF, field_image
from nnexp.models.mlp import MLP
from nnexp.runs.snapshots import SNAPSHOTS_FILE, choose_every, read_snapshots

SMALL = ["model.hidden=[32,32]", "model.dropout=0", "optim.lr=0.01", "data.n_samples=400"]


def gif_frames(path) -> list[np.ndarray]:
    with Image.open(path) as gif:
        frames = []
        for index in range(gif.n_frames):
            gif.seek(index)
            frames.append(np.asarray(gif.convert("RGB")))
    return frames


def share_near(picture: np.ndarray, colour: np.ndarray, tolerance: float = 60) -> float:
    """The share of the picture's pixels within `tolerance` (0-255 units, per channel) of `colour`."""
    return float((np.abs(picture.astype(float) - colour * 255).max(axis=-1) < tolerance).mean())


def test_the_default_moons_run_learns_and_draws_its_boundary_and_its_training(tmp_path):
    result = nnexp.run(["data=toy2d", "data.shape=moons"], output_dir=tmp_path / "run")
    assert result.status == "completed"
    assert result.metrics["test_accuracy"] >= 0.95  # logistic regression, a straight line, stays near 0.86
    run = result.run_dir
    with Image.open(run / BOUNDARY_PLOT) as picture:
        boundary = np.asarray(picture.convert("RGB"))
    assert boundary.shape[1] == 640 and 400 <= boundary.shape[0] <= 900  # 6.4 in at 100 dpi, to scale
    sure_of = [field_image(np.array([[label]]), np.array([[255]]), 2)[0, 0] for label in (0, 1)]
    assert all(share_near(boundary, colour) > 0.1 for colour in sure_of)  # both classes' regions, sure

    saved = read_snapshots(run / SNAPSHOTS_FILE)
    assert list(saved["epochs"]) == list(range(0, 31, 3))  # before training, then every 3rd of 30 epochs
    assert saved["scores"][0] < 0.8 < 0.95 < saved["scores"][-1]  # the training points scored each frame
    frames = gif_frames(run / TRAINING_GIF)
    assert len(frames) == len(saved["epochs"]) >= 10
    assert not np.array_equal(frames[0], frames[-1])  # the boundary moved
    page = (run / "report.html").read_text()
    assert "data:image/gif;base64," in page and "activations.png" in page


def test_spirals_draw_a_training_gif_of_at_least_ten_frames(tmp_path):
    result = nnexp.run(
        ["data=toy2d", "data.shape=spirals", "trainer.epochs=12", *SMALL], output_dir=tmp_path / "run"
    )
    frames = gif_frames(result.run_dir / TRAINING_GIF)
    assert len(frames) == 13  # epoch 0 and each of 12
    assert (result.run_dir / BOUNDARY_PLOT).is_file()
    assert len({frame.tobytes() for frame in frames}) == 13  # every frame says its epoch, and differs


def losses_of(metrics_csv) -> list[tuple[str, str, str]]:
    with open(metrics_csv, newline="") as file:
        return [(row["train_loss"], row["val_loss"], row["val_accuracy"]) for row in csv.DictReader(file)]


def test_the_snapshots_change_nothing_the_run_trains(tmp_path):
    """The grid runs in eval mode with no gradients: the losses are the same to the last bit without it."""
    job = ["data=toy2d", "data.shape=xor", "trainer.epochs=3", *SMALL, "model.dropout=0.2"]
    watched = nnexp.run(job, output_dir=tmp_path / "watched")
    unwatched = nnexp.run([*job, "outputs.views=false"], output_dir=tmp_path / "unwatched")
    assert (watched.run_dir / SNAPSHOTS_FILE).is_file()
    assert not (unwatched.run_dir / SNAPSHOTS_FILE).exists()  # no views: no frames taken either
    losses = [losses_of(run.run_dir / "metrics.csv") for run in (watched, unwatched)]
    assert len(losses[0]) == 3 and losses[0] == losses[1]
    assert watched.metrics == unwatched.metrics


def test_a_resumed_run_keeps_the_frames_up_to_its_checkpoint_and_adds_its_own(tmp_path):
    first = nnexp.run(["data=toy2d", "trainer.epochs=4", *SMALL], output_dir=tmp_path / "run")
    before = read_snapshots(first.run_dir / SNAPSHOTS_FILE)
    assert list(before["epochs"]) == [0, 1, 2, 3, 4]
    resume_in_process(first.run_dir, "trainer.epochs=8", "force=true")
    after = read_snapshots(first.run_dir / SNAPSHOTS_FILE)
    assert list(after["epochs"]) == list(range(9))
    assert np.array_equal(after["frames"]["classes"][:5], before["frames"]["classes"])


def test_a_one_feature_regression_animates_its_fitted_curve(tmp_path):
    curve = write_curve_csv(tmp_path / "curve.csv")
    result = nnexp.run(
        ["experiment=lectures/gp_relu", f"data.path={curve}", "trainer.epochs=24"],
        output_dir=tmp_path / "run",
    )
    saved = read_snapshots(result.run_dir / SNAPSHOTS_FILE)
    assert saved["kind"] == "curve" and saved["frames"]["curve"].shape == (13, 200)  # 0, 2, ... 24
    assert saved["scores"][-1] < saved["scores"][0]  # the training mse fell between the frames
    assert len(gif_frames(result.run_dir / TRAINING_GIF)) == 13
    assert not (result.run_dir / BOUNDARY_PLOT).exists()  # one feature: no plane to draw


def test_a_long_run_still_makes_ten_to_thirty_frames():
    for epochs in range(10, 5000):
        every = choose_every(epochs)
        frames = len({0, *range(every, epochs + 1, every), epochs})  # before training, chosen, the last
        assert 10 <= frames <= 30, epochs


def test_each_shape_is_two_balanced_classes_in_the_plane_the_same_for_a_seed():
    for shape in SHAPES:
        data = load_toy2d(shape, 500, 0.1, 3, 0.2, 0.1)
        assert data.spec.input_shape == (2,) and data.spec.num_outputs == 2
        assert data.spec.sizes == {"train": 360, "val": 40, "test": 100}
        labels = torch.cat([part.targets for part in data.splits().values()])
        assert abs(labels.float().mean().item() - 0.5) < 0.05, shape
        inputs = torch.cat([part.inputs for part in data.splits().values()])
        assert inputs.abs().max() < 3, shape
        again = load_toy2d(shape, 500, 0.1, 3, 0.2, 0.1)
        assert torch.equal(again.train.inputs, data.train.inputs), shape


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("data.shape=triangle", "moons, circles, spirals, xor"),
        ("data.noise=-1", "data.noise=-1"),
        ("data.n_samples=3", "data.n_samples=3"),
        ("data.n_samples=1000000000", "to 10,000,000"),  # 8.5 GB before the first step, unbounded
    ],
)
def test_a_bad_toy2d_setting_is_one_line_and_exit_2_with_nothing_created(
    tmp_path, monkeypatch, capsys, override, named
):
    monkeypatch.chdir(tmp_path)
    assert nnexp_exit_code(monkeypatch, "data=toy2d", override) == 2
    printed = capsys.readouterr()
    message = (printed.err + printed.out).strip()
    assert named in message and len(message.splitlines()) == 1, message
    assert list(tmp_path.iterdir()) == []


def test_activations_come_from_every_computing_layer_in_call_order():
    model = MLP((2,), 2, hidden=[8, 4], activation="relu", dropout=0.5)
    outputs = layer_outputs(model, torch.randn(32, 2), "classification")
    assert [name for name, _ in outputs] == [
        "layers.1 (Linear)",
        "layers.2 (ReLU)",
        "layers.4 (Linear)",
        "layers.5 (ReLU)",
        "layers.7 (Linear)",
    ]  # Flatten and Dropout pass their input on: left out
    assert [len(values) for _, values in outputs] == [32 * 8, 32 * 8, 32 * 4, 32 * 4, 32 * 2]
    assert (outputs[1][1] >= 0).all() and model.training  # its mode given back
