"""Learner diagnostics: each classic mistake, set up through config overrides on real data, is named by its
code with a hint; a healthy setup raises none (tests/test_presets.py checks every preset too)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import torch
from torch import nn

import nnexp
from conftest import compose_config, read_summary, write_fish_csv
from nnexp.data import DataBundle, DataSpec, TensorSplit
from nnexp.data.text import TokenSplit
from nnexp.diagnostics.probe import Probe
from nnexp.diagnostics.training import Chance, TrainingWatch, WatchOptions
from nnexp.errors import ConfigError, UserError
from nnexp.models.recurrent import GRU
from nnexp.runs.run import start_diagnostics
from nnexp.train.build import build

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
BOOK = "The Time Traveller (for so it will be convenient to speak of him) was expounding a recondite matter. "


def codes_before_training(*overrides: str) -> list[str]:
    """The codes the checks on the untrained model and the data raise for `nnexp OVERRIDES...`."""
    cfg = compose_config(*overrides)
    experiment = build(cfg)
    start_diagnostics(experiment, cfg)
    return [finding.code for finding in experiment.diagnostics.diagnosis.findings]


def codes_of(run_folder: Path) -> list[str]:
    return [finding["code"] for finding in read_summary(run_folder)["diagnostics"]]


def finding_of(run_folder: Path, code: str) -> dict:
    [found] = [finding for finding in read_summary(run_folder)["diagnostics"] if finding["code"] == code]
    return found


@pytest.fixture
def fish_path(tmp_path: Path) -> str:
    real = SHARED_DATA / "Fish.csv"
    return str(real if real.is_file() else write_fish_csv(tmp_path / "Fish.csv", rows=159))


@pytest.fixture
def text_path(tmp_path: Path) -> str:
    real = SHARED_DATA / "timemachine.txt"
    if real.is_file():
        return str(real)
    (tmp_path / "book.txt").write_text(BOOK * 400)
    return str(tmp_path / "book.txt")


# Before training, on the real digits


def test_a_healthy_setup_raises_nothing():
    assert codes_before_training() == []
    assert codes_before_training("model=cnn") == []
    assert codes_before_training("model=three_blue", "loss=mse_onehot") == []  # sigmoid outputs fit MSE


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        (["model.output_activation=softmax"], "softmax-before-cross-entropy"),
        (["model.output_activation=log_softmax"], "softmax-before-cross-entropy"),
        (["model.output_activation=sigmoid"], "clipped-logits"),
        (["model.output_activation=relu"], "clipped-logits"),
        (["model.init=normal", "model.init_std=0"], "symmetric-init"),
        (["data.scale=false"], "input-scale"),
        (["model.init=normal", "model.init_std=1"], "initial-loss"),
        (["model.hidden=[32,32,32,32,32,32]", "model.activation=sigmoid"], "vanishing-gradients"),
    ],
)
def test_each_mistake_in_the_setup_is_named(overrides, code):
    assert code in codes_before_training(*overrides)


def test_unscaled_csv_columns_and_an_uncentred_target_are_named(fish_path):
    fish = ["experiment=fish_linreg", f"data.path={fish_path}"]
    assert codes_before_training(*fish) == []
    assert codes_before_training(*fish, "data.normalize_features=false") == ["input-scale"]
    experiment = build(compose_config(*fish, "data.normalize_target=false"))
    start_diagnostics(experiment, compose_config(*fish, "data.normalize_target=false"))
    [finding] = experiment.diagnostics.diagnosis.findings
    assert finding.code == "initial-loss" and "data.normalize_target=true" in finding.hint


def test_a_loss_that_does_not_fit_the_task_is_refused_with_its_code(tmp_path, fish_path):
    with pytest.raises(ConfigError) as refused:
        nnexp.run(["loss=mse"], output_dir=tmp_path / "run")
    assert refused.value.exit_code == 2
    assert str(refused.value).startswith("[mse-on-class-indices] loss=mse does not fit digits")
    assert "use loss=mse_onehot" in str(refused.value)
    assert not (tmp_path / "run").exists()  # refused: no folder of a run that never trained
    fish = ["experiment=fish_linreg", f"data.path={fish_path}", "loss=cross_entropy"]
    with pytest.raises(ConfigError, match=re.escape("[cross-entropy-on-regression]")) as refused:
        nnexp.run(fish, output_dir=tmp_path / "run")
    assert refused.value.exit_code == 2


# During training, in this process as `nnexp` runs it (nnexp.run): the findings are in summary.json, the
# run's log (nnexp.log, printed by the CLI) and the console's table at the end.


def test_the_lectures_learning_rate_of_500_is_flagged_as_stuck(tmp_path, piped_console):
    # three_blue_lr500 trains on MNIST; the same net and loss on the digits (64-16-16-10) sticks the same way.
    result = nnexp.run(
        ["experiment=three_blue_lr500", "data=digits", "trainer.epochs=8"], output_dir=tmp_path / "run"
    )
    folder = result.run_dir
    stuck = finding_of(folder, "stuck-loss")
    assert stuck["epoch"] == 7 and "has not moved for 5 epochs" in stuck["message"]
    assert stuck["expected"] is True  # the preset declares it demonstrates this
    assert "[stuck-loss] epoch 7" in (folder / "nnexp.log").read_text()
    assert "stuck-loss (expected)" in piped_console()  # the table at the end


def test_all_zero_weights_leave_a_classifier_at_chance_with_dead_units(tmp_path):
    result = nnexp.run(
        ["model.init=normal", "model.init_std=0", "trainer.epochs=5"], output_dir=tmp_path / "run"
    )
    assert result.status == "completed"
    assert codes_of(result.run_dir) == ["symmetric-init", "dead-relu", "chance-level"]
    summary = read_summary(result.run_dir)
    assert summary["initial_loss"]["expected"] == pytest.approx(math.log(10), abs=1e-6)


def test_too_large_a_learning_rate_kills_relus_and_the_metrics_show_it(tmp_path):
    # the 64-128-10 net, so the layers are named as below
    net = ["model.hidden=[128]", "model.dropout=0"]
    result = nnexp.run(["optim=sgd", "optim.lr=3", "trainer.epochs=2", *net], output_dir=tmp_path / "run")
    folder = result.run_dir
    assert result.status == "completed"
    assert "dead-relu" in codes_of(folder)
    header, *rows = (folder / "metrics.csv").read_text().splitlines()
    assert (
        "grad_norm/layers.1" in header and "grad_norm/layers.3" in header and "dead_relu/layers.2" in header
    )
    dead = header.split(",").index("dead_relu/layers.2")
    assert float(rows[-1].split(",")[dead]) >= 0.5


def test_a_non_finite_loss_is_recorded_as_a_diagnostic(tmp_path):
    with pytest.raises(UserError) as stopped:
        nnexp.run(["optim=sgd", "optim.lr=1e12", "trainer.epochs=2"], output_dir=tmp_path / "run")
    assert stopped.value.exit_code == 3  # the CLI's exit code (tests/test_safety.py runs it as a process)
    assert "[non-finite-loss] loss became" in str(stopped.value)
    assert codes_of(tmp_path / "run")[-1] == "non-finite-loss"


def test_a_finite_loss_far_above_what_guessing_scores_stops_the_run_as_diverged(tmp_path):
    # The 64-128-10 net: at lr 1e6 its loss stays finite (the default, wider net's turns NaN at once).
    small = ["model.hidden=[128]", "model.dropout=0"]
    with pytest.raises(UserError) as stopped:
        nnexp.run(["optim=sgd", "optim.lr=1e6", "trainer.epochs=3", *small], output_dir=tmp_path / "run")
    assert stopped.value.exit_code == 3  # the CLI's exit code (tests/test_safety.py runs it as a process)
    folder = tmp_path / "run"
    summary = read_summary(folder)
    assert summary["status"] == "diverged" and summary["epochs_completed"] == 0
    finding = finding_of(folder, "exploded-loss")
    assert "the 2.303 that guessing scores" in finding["message"] and "optim.lr" in finding["hint"]


def test_a_language_model_that_does_not_learn_is_at_chance(tmp_path, text_path):
    # The preset's 10,000 tokens make 8 batches an epoch: 13 epochs pass the 100 steps chance-level waits for.
    lm = ["experiment=time_machine_rnn", f"data.path={text_path}", "optim.lr=1e-6", "trainer.epochs=13"]
    folder = nnexp.run(lm, output_dir=tmp_path / "run").run_dir
    assert "chance-level" in codes_of(folder)
    # Chance is ln V for this text's own vocabulary: 28 tokens for the book, fewer for the stand-in.
    vocabulary = len(json.loads((folder / "vocab.json").read_text())["tokens"])
    assert f"a uniform guess scores {math.log(vocabulary):.4g}" in (folder / "nnexp.log").read_text()


def test_a_recurrent_net_trained_without_clipping_blows_up(tmp_path, text_path):
    lm = ["experiment=time_machine_rnn", f"data.path={text_path}", "trainer.clip_grad_norm=null"]
    folder = nnexp.run([*lm, "trainer.epochs=3"], output_dir=tmp_path / "run").run_dir
    assert "trainer.clip_grad_norm=1" in finding_of(folder, "unstable-loss")["hint"]


BIG = ["model=mlp", "model.hidden=[256,256]", "model.dropout=0", "optim=adam", "optim.lr=0.01"]  # no dropout


def write_noisy_rows(path: Path, rows: int = 120, features: int = 8, seed: int = 0) -> list[str]:
    """A CSV where y is x0 plus noise as large as the signal: a big network can only memorise the rest.
    Returns the feature names."""
    import random

    rng = random.Random(seed)
    names = [f"x{i}" for i in range(features)]
    lines = [",".join([*names, "y"])]
    for _ in range(rows):
        xs = [rng.gauss(0, 1) for _ in names]
        lines.append(",".join(f"{value:.4f}" for value in [*xs, xs[0] + rng.gauss(0, 1)]))
    path.write_text("\n".join(lines) + "\n")
    return names


def test_a_big_network_on_a_few_noisy_rows_overfits(tmp_path):
    names = write_noisy_rows(tmp_path / "noisy.csv")
    data = ["data=csv", f"data.path={tmp_path / 'noisy.csv'}", f"data.features=[{','.join(names)}]",
            "data.target=y", "data.val_fraction=0.3"]  # fmt: skip
    overrides = [*data, *BIG, "trainer.epochs=30", "trainer.batch_size=16"]
    folder = nnexp.run(overrides, output_dir=tmp_path / "run").run_dir
    assert "overfitting" in codes_of(folder)
    assert "regularization=dropout" in (folder / "nnexp.log").read_text()


@pytest.mark.skipif(not (SHARED_DATA / "Fish.csv").is_file(), reason="no real fish CSV beside this checkout")
def test_a_big_network_on_the_real_fish_overfits(tmp_path):
    fish = ["experiment=fish_linreg", f"data.path={SHARED_DATA / 'Fish.csv'}", "data.val_fraction=0.3"]
    folder = nnexp.run([*fish, *BIG, "trainer.epochs=25"], output_dir=tmp_path / "run").run_dir
    assert "overfitting" in codes_of(folder)


def test_diagnostics_can_be_switched_off(tmp_path):
    overrides = ["model.output_activation=softmax", "diagnostics.enabled=false", "trainer.epochs=1"]
    result = nnexp.run(overrides, output_dir=tmp_path / "run")
    folder = result.run_dir
    assert result.status == "completed" and codes_of(folder) == []
    assert "grad_norm" not in (folder / "metrics.csv").read_text()


# The checks on the metrics rows


def rows(losses: list[tuple[float, float]], **columns: float) -> list[dict]:
    return [
        {"epoch": epoch, "train_loss": train, "val_loss": val, "train_accuracy": 0.9, **columns}
        for epoch, (train, val) in enumerate(losses, start=1)
    ]


def codes_from(watch: TrainingWatch, epochs: list[dict]) -> dict[int, list[str]]:
    """{epoch: the codes found at it}, for the epochs where something was found."""
    found = {}
    for row in epochs:
        codes = [finding.code for finding in watch.update(row)]
        if codes:
            found[row["epoch"]] = codes
    return found


def flat_losses(loss: float, epochs: int = 8) -> list[dict]:
    return [{"epoch": epoch, "train_loss": loss, "train_mse": loss} for epoch in range(1, epochs + 1)]


def test_a_loss_that_stops_at_the_reachable_optimum_has_converged_not_stuck():
    watch = TrainingWatch(Chance(loss=1.0, metric="mse"), WatchOptions(after_epochs=100, stuck_epochs=5))
    watch.optimum = 0.2115  # least squares, for an affine model
    assert codes_from(watch, flat_losses(0.2161)) == {}  # 0.6% of the way from the optimum up to guessing
    assert watch.converged == (6, 0.2161)


def test_a_loss_stuck_above_the_reachable_optimum_is_stuck_and_says_how_far():
    watch = TrainingWatch(Chance(loss=1.0, metric="mse"), WatchOptions(after_epochs=100, stuck_epochs=5))
    watch.optimum = 0.2115
    plateau = flat_losses(0.2553)  # seed 003's unshuffled fish run
    [finding] = [finding for row in plateau for finding in watch.update(row)]
    assert finding.code == "stuck-loss" and "above the least-squares optimum 0.2115" in finding.message
    assert watch.converged is None


def test_only_an_affine_model_under_mse_has_a_known_optimum(fish_csv):
    from nnexp.diagnostics.training import reachable_optimum

    cfg = compose_config("experiment=fish_linreg", f"data.path={fish_csv}")
    data = build(cfg).data
    assert reachable_optimum(data, nn.Sequential(nn.Linear(2, 1)), "mse") is not None
    assert reachable_optimum(data, nn.Sequential(nn.Linear(2, 4), nn.Identity(), nn.Linear(4, 1)), "mse")
    assert reachable_optimum(data, nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 1)), "mse") is None
    assert reachable_optimum(data, nn.Sequential(nn.Linear(2, 1)), "l1") is None


def test_a_linear_regression_that_reaches_least_squares_is_told_it_converged(tmp_path, fish_csv):
    full_batch = ["trainer.batch_size=full", "optim.lr=0.5", "scheduler=none", "trainer.epochs=60"]
    overrides = ["experiment=fish_linreg", f"data.path={fish_csv}", *full_batch]
    folder = nnexp.run(overrides, output_dir=tmp_path / "run").run_dir
    assert "stuck-loss" not in codes_of(folder)
    assert "has stopped at the least-squares optimum" in (folder / "nnexp.log").read_text()


def test_overfitting_is_a_validation_loss_that_keeps_rising_while_the_training_loss_falls():
    watch = TrainingWatch(Chance(accuracy=0.1), WatchOptions(after_epochs=3, stuck_epochs=0))
    falling = [(1.0 / epoch, 1.0 - 0.1 * epoch) for epoch in range(1, 4)]  # best validation: epoch 3
    rising = [(0.2 / epoch, 0.7 + 0.1 * epoch) for epoch in range(1, 5)]
    assert codes_from(watch, rows(falling + rising)) == {6: ["overfitting"]}  # 3 evaluations above the best


def test_a_loss_that_climbs_far_above_chance_is_unstable():
    watch = TrainingWatch(Chance(loss=math.log(28)), WatchOptions(stuck_epochs=0))
    climbing = [{"epoch": epoch, "train_loss": loss} for epoch, loss in enumerate([8.4, 30.8, 77.0], start=1)]
    assert codes_from(watch, climbing) == {2: ["unstable-loss"]}  # epoch 1 starts high: initial-loss's job
    falling = [{"epoch": epoch, "train_loss": 34 / epoch} for epoch in range(1, 6)]  # a big start, then down
    assert codes_from(TrainingWatch(Chance(loss=2.3), WatchOptions(stuck_epochs=0)), falling) == {}


def test_noise_in_the_validation_loss_is_not_overfitting():
    watch = TrainingWatch(Chance(accuracy=0.1), WatchOptions(after_epochs=3, stuck_epochs=0))
    wobbling = [(1.0 / epoch, 0.5 + 0.02 * (epoch % 2)) for epoch in range(1, 12)]
    assert codes_from(watch, rows(wobbling)) == {}
    spike = [(1.0 / epoch, 0.9 if epoch == 8 else 0.5) for epoch in range(1, 12)]  # one bad evaluation
    assert codes_from(TrainingWatch(Chance(accuracy=0.1), watch.options), rows(spike)) == {}


def test_chance_level_waits_for_enough_steps_in_a_full_batch_run():
    options = WatchOptions(after_epochs=5, after_steps=100, steps_per_epoch=1, stuck_epochs=0)
    watch = TrainingWatch(Chance(accuracy=0.1), options)
    at_chance = [{"epoch": epoch, "train_loss": 1 / epoch, "train_accuracy": 0.1} for epoch in range(1, 101)]
    assert codes_from(watch, at_chance) == {100: ["chance-level"]}


@pytest.mark.parametrize(
    ("first", "last", "expected"),
    [
        (1e-6, 0.3, ["vanishing-gradients"]),
        (5e3, 0.3, ["exploding-gradients"]),
        (0.01, 0.3, []),
        (0.0, 0.3, []),
    ],
)
def test_gradients_are_compared_between_the_first_and_the_last_layer(first, last, expected):
    watch = TrainingWatch(Chance(accuracy=0.1), WatchOptions(stuck_epochs=0))
    row = {
        "epoch": 1,
        "train_loss": 1.0,
        "train_accuracy": 0.9,
        "grad_norm/first": first,
        "grad_norm/last": last,
    }
    assert [finding.code for finding in watch.update(row)] == expected


def test_a_relu_layer_is_dead_when_it_stays_dead_for_two_epochs():
    watch = TrainingWatch(Chance(accuracy=0.1), WatchOptions(stuck_epochs=0))
    shares = [0.1, 0.9, 0.2, 0.8, 0.95]  # one dead epoch may be units that ignore noise images together
    epochs = [{"epoch": epoch, "train_loss": 1.0, "train_accuracy": 0.9, "dead_relu/layers.2": share}
              for epoch, share in enumerate(shares, start=1)]  # fmt: skip
    assert codes_from(watch, epochs) == {5: ["dead-relu"]}


# The probe


def tiny_bundle(inputs: torch.Tensor, targets: torch.Tensor) -> DataBundle:
    spec = DataSpec("tiny", "classification", tuple(inputs.shape[1:]), int(targets.max()) + 1)
    return DataBundle(spec, TensorSplit(inputs, targets), None, TensorSplit(inputs, targets))


def test_the_probe_changes_nothing_the_training_sees():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 3))
    model.train()
    bundle = tiny_bundle(torch.randn(32, 4), torch.randint(0, 3, (32,)))
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    random_state = torch.get_rng_state()
    result = Probe(bundle, rows=16, lm_batch_size=1).measure(model, nn.functional.cross_entropy)
    assert all(parameter.grad is None for parameter in model.parameters())
    assert all(torch.equal(before[name], tensor) for name, tensor in model.state_dict().items())
    assert torch.equal(torch.get_rng_state(), random_state) and model.training
    assert list(result.grad_norms) == ["0", "4"] and all(norm > 0 for norm in result.grad_norms.values())


def test_the_probe_of_a_recurrent_net_with_dropout_leaves_the_random_stream_alone():
    torch.manual_seed(0)
    model = GRU(input_shape=(5,), num_outputs=7, hidden_size=8, num_layers=2, dropout=0.5)
    tokens = TokenSplit(torch.randint(0, 7, (200,)), num_steps=5, partition="sequential")
    bundle = DataBundle(DataSpec("text", "language_model", (5,), 7), tokens, None, tokens)
    random_state = torch.get_rng_state()
    result = Probe(bundle, rows=128, lm_batch_size=4).measure(model, nn.functional.cross_entropy)
    assert torch.equal(torch.get_rng_state(), random_state)
    assert list(result.grad_norms) == ["rnn", "head"] and result.loss == pytest.approx(math.log(7), rel=0.2)


def test_a_relu_unit_is_dead_when_it_is_zero_for_every_probed_example():
    layer = nn.Linear(2, 4)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]]))
        layer.bias.zero_()
    model = nn.Sequential(layer, nn.ReLU(), nn.Linear(4, 2))
    positive = torch.rand(16, 2) + 0.1  # units 3 and 4 see only negative sums
    labels = torch.arange(16) % 2
    result = Probe(tiny_bundle(positive, labels), 16, 1).measure(model, nn.functional.cross_entropy)
    assert result.dead_relu == {"1": 0.5}
