"""The learning-rate finder: `nnexp +lr_find=exponential` sweeps the lr and suggests one to train with."""

from __future__ import annotations

import csv
import math
import re
from functools import partial

import pytest
import torch

import nnexp
from conftest import compose_config, read_summary, write_fish_csv
from nnexp.cli.preflight import preflight
from nnexp.data.tasks import task_of
from nnexp.errors import ConfigError
from nnexp.train import loop
from nnexp.train.build import build
from nnexp.train.lr_finder import LossCurve, LrFinderOptions, find_lr, suggest

REGRESSION = task_of("regression")
LANGUAGE_MODEL = task_of("language_model")

# --- the sweep ---------------------------------------------------------------------------------------


def test_the_lr_grows_exponentially_from_start_lr_to_end_lr():
    options = LrFinderOptions(start_lr=1e-6, end_lr=1.0, num_steps=7)
    lrs = [options.lr_at(step) for step in range(7)]
    assert lrs[0] == pytest.approx(1e-6) and lrs[-1] == pytest.approx(1.0)
    assert [b / a for a, b in zip(lrs, lrs[1:], strict=False)] == pytest.approx([10.0] * 6)


def test_a_constant_loss_smooths_to_itself_from_the_first_step():
    curve = LossCurve(smoothing=0.98, stop_factor=4)
    for _ in range(5):
        curve.add(1e-3, 2.0)
    assert curve.smoothed == pytest.approx([2.0] * 5)  # debiased: not pulled towards 0 at the start


def test_the_smoothed_loss_follows_a_jump_gradually():
    curve = LossCurve(smoothing=0.9, stop_factor=100)
    for loss in [1.0] * 20 + [2.0]:
        curve.add(1e-3, loss)
    assert 1.0 < curve.smoothed[-1] < 1.2


def test_the_sweep_stops_once_the_smoothed_loss_exceeds_stop_factor_times_its_minimum():
    curve = LossCurve(smoothing=0.0, stop_factor=4)
    assert [curve.add(1e-3, loss) for loss in (1.0, 0.5, 1.9, 2.0)] == [None] * 4
    assert curve.add(1.0, 2.1) == "the smoothed loss rose above 4 x its minimum at lr 1"


def test_the_settling_steps_set_no_minimum_for_the_stop_rule():
    curve = LossCurve(smoothing=0.0, stop_factor=4, settle_steps=2)
    assert [curve.add(1e-3, loss) for loss in (0.1, 1.0, 1.0, 1.0)] == [None] * 4  # a lucky first batch


def test_a_non_finite_loss_stops_the_sweep_unrecorded():
    curve = LossCurve(smoothing=0.98, stop_factor=4)
    curve.add(1e-3, 1.0)
    assert curve.add(5.0, math.inf) == "the loss became inf at lr 5"
    assert curve.losses == [1.0]


# --- the suggestion ----------------------------------------------------------------------------------

LRS = [10 ** (-7 + 8 * step / 99) for step in range(100)]


def valley(lr: float) -> float:
    """A loss flat at 2.3 for small lrs, falling fastest at lr 1e-3 to 0.3, rising again past 0.1."""
    x = math.log10(lr)
    return 0.3 + 2.0 / (1 + math.exp(3 * (x + 3))) + max(0.0, x + 1) ** 2


def test_the_suggestion_is_the_steepest_descent_of_the_smoothed_loss():
    suggestion = suggest(LRS, [valley(lr) for lr in LRS], skip_start=10)
    assert 10**-3.3 < suggestion.lr < 10**-2.7
    assert suggestion.reason == "steepest descent of the smoothed loss"


def test_a_steeper_fall_after_the_lowest_loss_is_not_suggested():
    losses = [valley(lr) for lr in LRS]
    losses[-10:] = [50.0 - 4 * step for step in range(10)]  # diverged, then a plunge at lr ~1
    assert suggest(LRS, losses, skip_start=10).lr < 0.1


def test_a_loss_that_never_falls_gets_no_suggestion_and_says_why():
    suggestion = suggest(LRS, [2.3 + 0.01 * step for step in range(100)], skip_start=10)
    assert suggestion.lr is None
    assert suggestion.reason.startswith("the smoothed loss did not fall after the first 10 steps")


def test_a_sweep_too_short_to_judge_gets_no_suggestion():
    suggestion = suggest(LRS[:11], [valley(lr) for lr in LRS[:11]], skip_start=10)
    assert suggestion.lr is None and "too few" in suggestion.reason


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"start_lr": 0.0}, "lr_find.start_lr=0.0 is not allowed"),
        ({"end_lr": 1e-8}, "lr_find.end_lr=1e-08 is not allowed: use a finite number above"),
        ({"num_steps": 12}, "lr_find.num_steps=12 is not allowed: use a whole number >= lr_find.skip_start"),
        ({"smoothing": 1.0}, "lr_find.smoothing=1.0 is not allowed"),
    ],
)
def test_settings_out_of_range_are_refused_by_key(setting, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        LrFinderOptions.from_config(setting)


# --- on real problems --------------------------------------------------------------------------------


def test_on_a_linear_regression_the_suggestion_lies_below_the_lr_where_gradient_descent_diverges(tmp_path):
    fish = write_fish_csv(tmp_path / "Fish.csv")
    cfg = compose_config(
        "data=fish", f"data.path={fish}", "model=linear", "optim=sgd", "trainer.batch_size=full",
        "+lr_find=exponential",
    )  # fmt: skip
    experiment = build(cfg)
    inputs = experiment.data.train.inputs
    rows = torch.cat([inputs, torch.ones(len(inputs), 1)], dim=1)  # (N, features + bias)
    curvature = torch.linalg.eigvalsh(2 * rows.T @ rows / len(rows)).max().item()  # of the mean squared error
    settings = {key: value for key, value in experiment.optimizer.param_groups[0].items() if key != "params"}

    options = LrFinderOptions.from_config(cfg.lr_find)
    found = find_lr(experiment, options, len(inputs), partial(loop.train_one_epoch, task=REGRESSION))

    divergence = 2 / curvature  # full-batch gradient descent diverges above this lr
    assert options.start_lr < found.suggested_lr < divergence
    assert found.lrs[-1] > divergence and found.stopped_early.startswith("the smoothed loss rose")
    after = {key: value for key, value in experiment.optimizer.param_groups[0].items() if key != "params"}
    assert {**after, "lr": settings["lr"]} == settings  # only the lr was changed


def test_a_language_model_carries_its_state_within_a_pass_and_cycles_a_short_training_split(tmp_path):
    book = tmp_path / "book.txt"
    book.write_text("the time traveller for so it will be convenient to speak of him\n" * 20)
    cfg = compose_config(
        "data=time_machine", f"data.path={book}", "model=rnn", "model.hidden_size=16", "trainer.batch_size=4",
        "data.num_steps=8", "+lr_find=exponential", "lr_find.num_steps=40", "lr_find.end_lr=0.01",
    )  # fmt: skip
    experiment = build(cfg)
    batches_per_pass = experiment.data.train.num_batches(4)
    assert batches_per_pass < 40
    model, fresh_state = experiment.model, []
    forward = model.forward
    model.forward = lambda inputs, state: fresh_state.append(state is None) or forward(inputs, state)
    train_epoch = partial(loop.train_one_epoch, task=LANGUAGE_MODEL, carry_state=True)

    found = find_lr(experiment, LrFinderOptions.from_config(cfg.lr_find), 4, train_epoch)

    assert len(found.lrs) == 40 and found.stopped_early is None
    assert sum(fresh_state) == math.ceil(40 / batches_per_pass)  # a fresh state only where a pass begins
    assert fresh_state[0] and not any(fresh_state[1:batches_per_pass])


# --- the command line --------------------------------------------------------------------------------


def test_nnexp_lr_find_records_the_sweep_instead_of_training_and_prints_the_suggestion(
    tmp_path, piped_console
):
    folder = nnexp.run(["+lr_find=exponential", "lr_find.num_steps=60"], output_dir=tmp_path / "run").run_dir
    printed = piped_console() + (folder / "nnexp.log").read_text()  # the console and the run's log
    summary = read_summary(folder)
    assert summary["status"] == "completed" and summary["mode"] == "lr_find"
    assert summary["lr_find"]["steps"] <= 60
    rows = list(csv.DictReader((folder / "lr_find.csv").open()))
    assert len(rows) == summary["lr_find"]["steps"]
    assert {"lr", "loss", "smoothed_loss"} <= set(rows[0])
    assert (folder / "lr_find.png").stat().st_size > 0
    assert not (folder / "checkpoint.pt").exists() and not (folder / "metrics.csv").exists()
    suggested = summary["lr_find"]["suggested_lr"]
    assert 1e-7 < suggested < 10
    assert f"suggested learning rate: {suggested:.1e}" in printed
    assert f"train with optim.lr={suggested:.2g}\n" in printed


def test_lr_find_true_names_the_option_to_use_on_the_command_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # where `nnexp` would make outputs/DATE/TIME
    with pytest.raises(ConfigError) as refused:
        nnexp.run(["lr_find=true"])
    assert refused.value.exit_code == 2
    assert str(refused.value) == "lr_find=true does not name an option of lr_find: use +lr_find=exponential"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["+lr_find=true"], "lr_find=true does not name an option of lr_find: use +lr_find=exponential"),
        (["lr_find=exponential"], "lr_find is not in the default config: add it with a +, as +lr_find="),
        (["lr_find.num_steps=50"], "unknown key lr_find.num_steps: lr_find is not in the config until it is"),
        (["scheduler=null"], "scheduler=null does not name an option of scheduler: choose one of cosine"),
    ],
)
def test_preflight_says_how_to_add_the_finder(overrides, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        preflight(overrides)


def test_preflight_accepts_the_finder_and_its_settings():
    preflight(["+lr_find=exponential", "lr_find.num_steps=200", "optim=sgd"])
