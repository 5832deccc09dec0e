"""The trainer habits researchers bring from Lightning: testing on the best epoch (checkpoint_best.pt),
gradient accumulation, debug=overfit, debug=profile, fp16 with a gradient scaler, device=mps.

Everything runs in this process (nnexp.run) on the digits, a few epochs each. There is no GPU here: the fp16
path is refused on the CPU, and its gradient scaler is exercised with torch's CPU scaler, which runs the same
scale / unscale / skip-on-overflow logic that the CUDA one does.
"""

from __future__ import annotations

import csv
import json
import logging
import math
from pathlib import Path

import pytest
import torch

import nnexp
from conftest import compose_config, copy_run, resume_in_process
from nnexp.errors import ConfigError
from nnexp.runs.best import BEST_CHECKPOINT_FILE
from nnexp.runs.checkpoint import load_checkpoint

# A run whose validation loss is lowest before its last epoch (epoch 4 of 6 here: checked below).
FAST = ["model.dropout=0", "optim.lr=0.01", "outputs.views=false", "diagnostics.enabled=false"]
BEST = [*FAST, "trainer.epochs=6", "trainer.test_on=best"]


def _rows(folder: Path) -> list[dict[str, str]]:
    with (folder / "metrics.csv").open() as file:
        return list(csv.DictReader(file))


def _test_metrics(overrides: list[str], weights: dict) -> dict[str, float]:
    """The test split's metrics of `weights` in the model that `nnexp OVERRIDES` builds."""
    from nnexp.train.build import build, loops_for

    cfg = compose_config(*overrides)
    experiment = build(cfg)
    experiment.model.load_state_dict(weights)
    evaluate = loops_for(experiment, cfg.trainer)[1]
    return evaluate(experiment.model, experiment.data.test, experiment.loss_fn)


def test_test_on_best_tests_the_best_epochs_weights_kept_in_checkpoint_best(session_runs):
    folder = session_runs(*BEST)
    summary = json.loads((folder / "summary.json").read_text())
    val_losses = [float(row["val_loss"]) for row in _rows(folder)]
    best_epoch = 1 + val_losses.index(min(val_losses))
    assert best_epoch < len(val_losses)  # the premise: the last epoch is not the best
    assert summary["test_on"] == "best"
    assert summary["best_epoch"] == best_epoch
    assert summary["best_checkpoint"] == {
        "file": BEST_CHECKPOINT_FILE,
        "monitor": "val_loss",  # no early stopping: the validation loss
        "mode": "min",
        "value": pytest.approx(min(val_losses)),
        "epoch": best_epoch,
    }
    best = load_checkpoint(folder / BEST_CHECKPOINT_FILE)
    assert best["epoch"] == best_epoch and len(best["history"]) == best_epoch
    tested = _test_metrics(BEST, best["model"])
    final = summary["metrics"]["final"]
    assert final["test_loss"] == pytest.approx(tested["loss"], rel=1e-5)
    assert final["test_accuracy"] == pytest.approx(tested["accuracy"], rel=1e-5)
    # checkpoint.pt keeps the last weights, which a resume continues from, and they test otherwise
    last = load_checkpoint(folder / "checkpoint.pt")
    assert last["epoch"] == len(val_losses)
    assert _test_metrics(BEST, last["model"])["loss"] != pytest.approx(final["test_loss"], rel=1e-5)


def test_test_on_last_is_the_default_records_the_best_epoch_by_early_stoppings_monitor_and_no_file(
    session_runs,
):
    folder = session_runs(
        *FAST,
        "trainer.epochs=3",
        "regularization=early_stopping",
        "regularization.early_stopping.monitor=val_accuracy",
        "regularization.early_stopping.mode=max",
    )
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["test_on"] == "last"
    accuracies = [float(row["val_accuracy"]) for row in _rows(folder)]
    assert summary["best_epoch"] == 1 + accuracies.index(max(accuracies))  # val_accuracy, mode max
    assert "best_checkpoint" not in summary  # the best weights are kept only for test_on=best
    assert not (folder / BEST_CHECKPOINT_FILE).exists()


def test_the_best_so_far_survives_a_resume(session_runs, tmp_path):
    """Five epochs, then resumed to six: the best (epoch 4) is the uninterrupted run's, weights and all."""
    whole = session_runs(*BEST)
    first = copy_run(session_runs(*FAST, "trainer.epochs=5", "trainer.test_on=best"), tmp_path / "run")
    best_then = json.loads((first / "summary.json").read_text())["best_epoch"]
    result = resume_in_process(first, "trainer.epochs=6", "force=true")
    expected = json.loads((whole / "summary.json").read_text())
    assert result.summary["best_epoch"] == expected["best_epoch"] == best_then  # kept, not overtaken
    assert result.metrics["test_loss"] == pytest.approx(expected["metrics"]["final"]["test_loss"], rel=1e-5)
    resumed_best = load_checkpoint(first / BEST_CHECKPOINT_FILE)["model"]
    for name, tensor in load_checkpoint(whole / BEST_CHECKPOINT_FILE)["model"].items():
        assert torch.allclose(resumed_best[name], tensor, atol=1e-6), name


def test_accumulating_four_batches_of_16_trains_like_batches_of_64(tmp_path):
    common = ["model.dropout=0", "trainer.epochs=3", "outputs.views=false", "diagnostics.enabled=false"]
    big = nnexp.run([*common, "trainer.batch_size=64"], output_dir=tmp_path / "big")
    small = nnexp.run(
        [*common, "trainer.batch_size=16", "trainer.accumulate_grad_batches=4"], output_dir=tmp_path / "small"
    )
    # digits' training split is not a multiple of 64: each epoch ends on a leftover group of batches
    assert small.metrics["train_loss"] == pytest.approx(big.metrics["train_loss"], rel=0.01)
    assert small.metrics["test_accuracy"] == pytest.approx(big.metrics["test_accuracy"], abs=0.01)
    unaccumulated = nnexp.run([*common, "trainer.batch_size=16"], output_dir=tmp_path / "plain")
    assert unaccumulated.metrics["train_loss"] != pytest.approx(big.metrics["train_loss"], rel=0.01)
    # the running metrics stay per batch: the epoch's mean of batch losses, as without accumulation
    assert len(_rows(tmp_path / "small")) == 3


def _step_once(scaler, inputs, clip=None):
    """One epoch of one batch on a fresh linear classifier; returns its weights after the step."""
    from nnexp.data.tasks import task_of
    from nnexp.train.loop import train_one_epoch

    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    targets = torch.tensor([0, 1, 2, 1])
    train_one_epoch(
        model,
        [(inputs, targets)],
        torch.nn.functional.cross_entropy,
        optimizer,
        task_of("classification"),
        clip_grad_norm=clip,
        scaler=scaler,
    )
    return model.weight.detach().clone()


def test_the_gradient_scaler_steps_as_without_it_and_skips_an_overflowing_step():
    inputs = torch.randn(4, 4, generator=torch.Generator().manual_seed(1))
    plain = _step_once(None, inputs, clip=0.5)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    assert torch.allclose(_step_once(scaler, inputs, clip=0.5), plain, atol=1e-6)  # unscaled before clipping
    assert scaler.get_scale() == 2.0**10  # no overflow: kept (grows only after growth_interval steps)
    torch.manual_seed(0)
    drawn = torch.nn.Linear(4, 3).weight.detach()
    assert not torch.equal(plain, drawn)
    overflowing = inputs.clone()
    overflowing[0, 0] = math.inf
    assert torch.equal(_step_once(scaler, overflowing), drawn)  # the step is skipped ...
    assert scaler.get_scale() == 2.0**9  # ... and the scale halved


def test_debug_overfit_learns_its_few_batches_and_says_so(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="nnexp"):
        result = nnexp.run(["debug=overfit", "outputs.views=false"], output_dir=tmp_path / "run")
    rows = _rows(tmp_path / "run")
    assert float(rows[-1]["train_accuracy"]) == 1.0
    assert len(rows) < 300  # stopped once learned
    assert all(float(row["train_accuracy"]) < 1.0 for row in rows[:-1])
    assert f"overfit: the 2 batches are learned (train accuracy 1.0) after {len(rows)} epochs" in caplog.text
    assert "dropout layers switched off" in caplog.text
    assert result.status == "completed"


def test_debug_profile_leaves_a_chrome_trace_and_a_table(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="nnexp"):
        nnexp.run(["debug=profile", "outputs.views=false"], output_dir=tmp_path / "run")
    trace = json.loads((tmp_path / "run" / "profile.trace.json").read_text())
    names = {event.get("name", "") for event in trace["traceEvents"]}
    assert any("addmm" in name or "linear" in name for name in names), sorted(names)[:20]
    table = (tmp_path / "run" / "profile.txt").read_text()
    assert "Self CPU" in table and "aten::" in table
    assert "profile: 5 training steps" in caplog.text and "profile.txt" in caplog.text


@pytest.mark.parametrize(
    ("overrides", "says", "unless"),
    [
        (["device=cpu", "trainer.precision=fp16"], "use trainer.precision=bf16", None),
        # device=auto on a machine without CUDA
        (["trainer.precision=fp16"], "use trainer.precision=bf16", torch.cuda.is_available),
        (["device=mps"], "use device=cpu or device=auto", torch.backends.mps.is_available),
    ],
)
def test_fp16_off_cuda_and_mps_where_there_is_none_are_refused_in_one_line(tmp_path, overrides, says, unless):
    if unless is not None and unless():
        pytest.skip("this machine has the device")
    with pytest.raises(ConfigError) as refused:
        nnexp.run(overrides, output_dir=tmp_path / "run")
    assert refused.value.exit_code == 2
    assert says in str(refused.value) and "\n" not in str(refused.value)
    assert not (tmp_path / "run").exists()  # nothing created


def test_a_trainer_habit_given_a_wrong_value_is_refused_by_name(tmp_path):
    for override in (
        "trainer.test_on=worst",
        "trainer.accumulate_grad_batches=0",
        "trainer.overfit_batches=-1",
    ):
        with pytest.raises(ConfigError, match=override.split("=")[0]):
            nnexp.run([override], output_dir=tmp_path / "run")
