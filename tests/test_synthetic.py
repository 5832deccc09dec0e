"""data=synthetic: random data drawn by nnexp, its training batches new samples every step.

The draws are seeded (a run, a resumed run and a sweep job reusing the bundle train on the same samples),
the fixed splits stay fixed, the inputs and targets follow the config, and a wrong setting is one line
naming the key, before a run folder exists. A constant target (variance 0) raises no false alarm.
"""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

import nnexp
from conftest import compose_config, exit_code_of, read_summary
from nnexp.config.checks import check_config
from nnexp.data import TensorSplit
from nnexp.data import cache as data_cache
from nnexp.data.synthetic import FreshSplit
from nnexp.diagnostics.training import Chance, TrainingWatch, WatchOptions
from nnexp.errors import ConfigError
from nnexp.look.predict import main as predict_main

TOY = ["data=synthetic", "data.shape=[784]", "data.low=1", "data.high=2", "data.target_rule=constant"]


def predict_exit(*args: object) -> int:
    return exit_code_of(predict_main, *args)


def bundle(*overrides: str):
    """What `nnexp data=synthetic OVERRIDES` loads, from the real config files."""
    cfg = compose_config("data=synthetic", *overrides)
    check_config(cfg)
    return instantiate(OmegaConf.to_container(cfg.data, resolve=True), _convert_="all")


def epoch(seed: int) -> torch.Generator:
    """The training loop's generator for one epoch (nnexp/runs/fit.py seeds it from the seed and epoch)."""
    return torch.Generator().manual_seed(seed)


def first_batch(split: TensorSplit, generator: torch.Generator | None, size: int = 4):
    return next(iter(split.batches(size, generator)))


def test_training_batches_are_new_samples_every_epoch_and_the_same_for_the_same_seed():
    data = bundle("data.train_size=8")
    assert isinstance(data.train, FreshSplit)
    one, again, other = first_batch(data.train, epoch(1)), first_batch(data.train, epoch(1)), None
    other = first_batch(data.train, epoch(2))
    assert torch.equal(one[0], again[0]) and torch.equal(one[1], again[1])
    assert not torch.equal(one[0], other[0])
    # neither is the fixed draw the evaluation reads, which stays the same however often it is read
    fixed = first_batch(data.train, None)
    assert torch.equal(fixed[0], data.train.inputs[:4]) and torch.equal(
        fixed[0], first_batch(data.train, None)[0]
    )
    assert not torch.equal(one[0], fixed[0])
    # an epoch is train_size samples, in batches like a fixed set's (the last one short)
    assert [len(x) for x, _ in data.train.batches(3, epoch(1))] == [3, 3, 2]


def test_no_epoch_of_fresh_samples_repeats_the_fixed_splits():
    """The loop seeds each epoch's draws with seed * 100_003 + epoch (nnexp/runs/fit.py): none of those
    streams may be the one the validation, test or fixed training draw came from (a test-set leak)."""
    for seed in (0, 1):
        data = bundle(f"seed={seed}", "data.train_size=4", "data.val_size=4", "data.test_size=4")
        fixed = [data.train.inputs, data.val.inputs, data.test.inputs]
        for number in range(1, 6):
            drawn = first_batch(data.train, epoch(seed * 100_003 + number))[0]
            assert not any(torch.equal(drawn, split) for split in fixed)


def test_inputs_lie_in_the_range_and_a_constant_target_is_that_constant():
    data = bundle(*TOY[1:], "data.target_value=2", "data.train_size=5", "data.val_size=3", "data.test_size=4")
    assert data.spec.input_shape == (784,) and data.spec.task == "regression" and data.spec.num_outputs == 1
    assert data.spec.sizes == {"train": 5, "val": 3, "test": 4}
    inputs, targets = first_batch(data.train, epoch(7), size=5)
    for x, y in [
        (inputs, targets),
        (data.test.inputs, data.test.targets),
        (data.val.inputs, data.val.targets),
    ]:
        assert x.shape[1:] == (784,) and x.min() >= 1 and x.max() < 2
        assert y.shape[1:] == (1,) and bool((y == 2).all())
    assert data.spec.details["target_rule"] == "the constant 2" and data.spec.details["synthetic"]
    assert data.spec.details["features"][:2] == ["x1", "x2"] and data.spec.details["target"] == "y"


def test_the_fixed_splits_are_drawn_once_from_the_seed():
    first, second, other = bundle("seed=3"), bundle("seed=3"), bundle("seed=4")
    assert torch.equal(first.test.inputs, second.test.inputs) and torch.equal(
        first.test.targets, second.test.targets
    )
    assert not torch.equal(first.test.inputs, other.test.inputs)
    assert not torch.equal(first.test.inputs[: len(first.train)], first.train.inputs[: len(first.test)])
    assert first.val is None  # data.val_size=0 by default
    assert bundle("data.test_size=0").test is None


def test_a_linear_rule_is_learnable_a_random_one_is_noise_and_images_have_their_shape():
    images = bundle(
        "data.task=classification", "data.shape=[3,16,16]", "data.low=0", "data.target_rule=linear",
        "data.num_outputs=5", "data.train_size=400",
    )  # fmt: skip
    assert images.spec.input_shape == (3, 16, 16) and images.spec.details["classes"] == list("01234")
    x, y = first_batch(images.train, epoch(0), size=400)
    assert x.shape == (400, 3, 16, 16) and y.dtype == torch.long and set(y.tolist()) <= set(range(5))
    assert len(set(y.tolist())) >= 2
    # the label is the largest output of one linear map, the same for every draw
    weights = images.train.source.weights
    assert torch.equal(y, ((x.reshape(400, -1) - 0.5) @ weights).argmax(dim=1))  # centred: low 0, high 1
    regression = bundle("data.train_size=50")
    x, y = first_batch(regression.train, epoch(0), size=50)
    assert torch.allclose(y, x @ regression.train.source.weights)  # inputs in [-1, 1): centred already
    noise = bundle("data.target_rule=random", "data.train_size=500")
    assert 0.8 < noise.train.targets.std().item() < 1.2


def test_fresh_false_is_one_fixed_training_set_and_moving_keeps_the_samples_fresh():
    fixed = bundle("data.fresh=false", "data.train_size=6")
    assert type(fixed.train) is TensorSplit
    shuffled = first_batch(fixed.train, epoch(1), size=6)[0]
    assert sorted(shuffled[:, 0].tolist()) == sorted(fixed.train.inputs[:, 0].tolist())
    fresh = bundle("data.train_size=6").to(torch.device("cpu"))
    assert isinstance(fresh.train, FreshSplit)


def test_a_sweep_job_reusing_the_kept_bundle_draws_the_same_samples_as_a_new_one():
    """The sweep's data cache hands the same bundle to the next job: no state in it may have moved on."""
    config = OmegaConf.to_container(compose_config("data=synthetic").data, resolve=True)
    device = torch.device("cpu")
    data_cache.keep_between_jobs(True)
    try:
        kept = data_cache.cached(config, 0, device, lambda: bundle())
        used = [first_batch(kept.train, epoch(1))[0] for _ in range(2)]  # the first job trains on it
        again = data_cache.cached(config, 0, device, lambda: bundle())
    finally:
        data_cache.keep_between_jobs(False)
    assert again is kept  # reused
    assert torch.equal(first_batch(again.train, epoch(1))[0], first_batch(bundle().train, epoch(1))[0])
    assert torch.equal(used[0], used[1])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["data.low=2", "data.high=1"], "data.low=2 is not below data.high=1"),
        (["data.val_size=0.1"], "data.val_size=0.1 is not allowed with data=synthetic"),
        (["data.test_size=0.5"], "data.test_size=0.5 is not allowed with data=synthetic"),
        (["data.shape=[3,32]"], "data.shape=[3,32] is not allowed"),
        (["data.target_rule=zero"], "data.target_rule=zero is not allowed"),
        (
            ["data.task=classification", "data.target_rule=constant"],
            "data.target_rule=constant gives a regression",
        ),
        (["data.task=classification", "data.target_rule=random"], "data.num_outputs=1 is not allowed"),
        (["data.train_size=0"], "data.train_size=0 is not allowed"),
        (["trainer.shuffle=false"], "trainer.shuffle=false keeps a fixed training set's order"),
        (["data.shape=[1,8,8]", "regularization=augment"], "regularization=augment transforms a fixed"),
    ],
)
def test_bad_synthetic_settings_are_refused_with_the_key_and_the_fix(overrides, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        check_config(compose_config("data=synthetic", *overrides))


def test_a_fixed_set_may_keep_its_order():
    check_config(compose_config("data=synthetic", "data.fresh=false", "trainer.shuffle=false"))


def test_a_refused_setting_is_one_line_with_exit_code_2_and_creates_no_run_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # where `nnexp` would make outputs/DATE/TIME
    with pytest.raises(ConfigError) as refused:
        nnexp.run(["data=synthetic", "data.low=3", "data.high=3"])
    assert refused.value.exit_code == 2
    assert str(refused.value).splitlines() == [
        "data.low=3 is not below data.high=3: the inputs are drawn from [low, high), so set "
        "e.g. data.low=0 data.high=1"
    ]
    assert list(tmp_path.iterdir()) == []


def test_a_constant_target_raises_no_unstable_loss_however_the_loss_jumps():
    """Guessing a constant target's mean scores 0: every loss is 'far above' that, which says nothing."""
    watch = TrainingWatch(Chance(loss=0.0, metric="mse"), WatchOptions(after_epochs=1, after_steps=0))
    found = [
        watch.update({"epoch": e, "train_loss": v, "train_mse": v})
        for e, v in enumerate([1.2, 0.07, 0.39], 1)
    ]
    assert [finding.code for findings in found for finding in findings] == []


def test_a_synthetic_run_trains_and_says_what_its_data_is(tmp_path, capsys):
    """One run of the default data=synthetic (a linear target), two epochs: the loss falls, and the
    summary's data spec says the samples were synthetic and fresh."""
    overrides = ["data=synthetic", "model=linear", "trainer.epochs=3", "optim.lr=0.01"]
    folder = nnexp.run(overrides, output_dir=tmp_path / "run").run_dir
    summary = read_summary(folder)
    details = summary["data"]["details"]
    assert details["synthetic"] is True and details["training"].startswith("fresh random samples every step")
    losses = pd.read_csv(folder / "metrics.csv")["train_loss"]
    assert losses.iloc[2] < losses.iloc[1] < losses.iloc[0]
    # the target's variance (the mean predictor's score) is 1 on average over the draws of 8 weights
    [mean_predictor] = [row for row in summary["baselines"] if row["name"] == "mean predictor"]
    assert 0.3 < mean_predictor["test_mse"] < 3
    assert summary["metrics"]["final"]["test_mse"] < 0.05 * mean_predictor["test_mse"]
    assert summary["diagnostics"] == []  # no alarm on the default data
    # its inputs are named as CSV columns (x1 ... x8), so nnexp-predict reads new rows for it
    rows = tmp_path / "rows.csv"
    rows.write_text(",".join(f"x{k}" for k in range(1, 9)) + "\n" + ",".join(["0.5"] * 8) + "\n")
    capsys.readouterr()
    assert predict_exit(folder, rows) == 0  # `nnexp-predict RUN rows.csv`, in this process
    assert "rows.csv" in capsys.readouterr().out


def test_nnexp_predict_refuses_a_synthetic_run_with_nothing_to_read_in_one_line(tmp_path, capsys):
    """`nnexp-predict RUN rows.csv`, its main() in this process: exit code 2 and exactly one line on stderr
    (nnexp-predict refusing in a process: tests/test_trust.py)."""
    folder = nnexp.run(
        ["data=synthetic", "data.task=classification", "data.num_outputs=3", "model=linear",
         "trainer.epochs=1"], output_dir=tmp_path / "run",
    ).run_dir  # fmt: skip
    rows = tmp_path / "rows.csv"
    rows.write_text("x1\n0.5\n")
    capsys.readouterr()
    assert predict_exit(folder, rows) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"nnexp: error: {folder}: this run's inputs (8, synthetic) are neither named CSV columns nor images, "
        f"so nnexp-predict has nothing to read new examples from"
    ]


@pytest.fixture
def jobs_of_one_sweep(monkeypatch):
    """Runs in this process as `nnexp -m`'s jobs run (Hydra's basic launcher runs them in one process,
    and nnexp/cli/command.py turns the data cache on for them); yields the bundles handed out."""
    handed = []
    build = data_cache.cached
    monkeypatch.setattr(data_cache, "cached", lambda *args: handed.append(build(*args)) or handed[-1])
    data_cache.keep_between_jobs()
    yield handed
    data_cache.keep_between_jobs(False)


def test_a_sweeps_second_job_trains_on_the_same_fresh_samples_as_its_first(tmp_path, jobs_of_one_sweep):
    """`nnexp -m` keeps the first job's data for the second (same data config and seed): its fresh
    batches must be the ones a new bundle draws, so both jobs' losses match step for step."""
    toy = "experiment=lectures/toy_linear_linear"
    first = nnexp.run([toy, "trainer.eval_every=1"], output_dir=tmp_path / "0").run_dir
    second = nnexp.run([toy, "trainer.eval_every=2"], output_dir=tmp_path / "1").run_dir
    assert len(jobs_of_one_sweep) == 2 and jobs_of_one_sweep[1] is jobs_of_one_sweep[0]  # the data was kept
    losses = [pd.read_csv(folder / "metrics.csv")["train_loss"].tolist() for folder in (first, second)]
    assert len(losses[0]) == 20 and losses[0] == losses[1]
    assert len(set(losses[0])) == 20  # a new example every step, so no two losses alike
