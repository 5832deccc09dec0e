"""Bookkeeping on a cadence (issue 17): the checkpoint on a time cadence, the probe on an epoch cadence,
the console line at most about once a second, and still every epoch's row in metrics.csv; a run
killed between two checkpoints resumes to the metrics an uninterrupted run records.

Nothing here depends on how fast the machine is: a stop is sent once the run has written its rows, and the
console's cadence is measured against the run's own clock. The stops are signals to real `nnexp`
processes; the reference run is trained once per session in this process (`session_runs`), and the
resumes run in this process as `nnexp resume=` runs them."""

from __future__ import annotations

import csv
import re
import signal
from pathlib import Path

import pytest
import torch

from conftest import read_summary, resume_in_process, start_then_signal
from nnexp.cli.preflight import preflight
from nnexp.data import DataBundle, DataSpec, TensorSplit
from nnexp.diagnostics.monitor import PROBE_FIRST_EPOCHS, Diagnostics
from nnexp.diagnostics.training import Chance, TrainingWatch, WatchOptions
from nnexp.errors import ConfigError
from nnexp.models.mlp import MLP
from nnexp.runs.checkpoint import load_checkpoint

# Full-batch digits, a few milliseconds an epoch: a run made almost only of bookkeeping.
LONG_TINY_RUN = ["trainer.batch_size=full", "trainer.epochs=400", "optim=sgd", "optim.lr=0.05", "device=cpu"]
TIMING = {"train_seconds", "seconds"}


def metric_rows(folder: Path) -> list[dict[str, str]]:
    """metrics.csv without the timing columns, which no two runs share."""
    with (folder / "metrics.csv").open(newline="") as handle:
        return [{k: v for k, v in row.items() if k not in TIMING} for row in csv.DictReader(handle)]


@pytest.fixture(scope="module")
def uninterrupted_run(session_runs) -> Path:
    return session_runs(*LONG_TINY_RUN)


@pytest.fixture(scope="module")
def uninterrupted(uninterrupted_run) -> list[dict[str, str]]:
    return metric_rows(uninterrupted_run)


def test_a_run_killed_between_checkpoints_resumes_to_the_uninterrupted_metrics(tmp_path, uninterrupted):
    """SIGKILL leaves rows after the last checkpoint in metrics.csv; resume drops them and retrains.
    An hour's cadence: the checkpoint is the one before training, or one a rare epoch of over a second
    forced (on a loaded machine); either way, rows were written past it."""
    folder = start_then_signal(
        tmp_path, signal.SIGKILL, 50, *LONG_TINY_RUN, "trainer.checkpoint_every_s=3600"
    )
    written = len(metric_rows(folder))
    saved = load_checkpoint(folder / "checkpoint.pt")["epoch"]
    assert saved < written and written >= 50
    resume_in_process(folder)
    assert metric_rows(folder) == uninterrupted  # no row lost or doubled, every value the same
    assert read_summary(folder)["epochs_completed"] == 400


def test_a_stop_signal_in_a_short_epoch_checkpoints_that_epoch(tmp_path, uninterrupted):
    """SIGTERM lets a short epoch finish and saves it, whatever the cadence: resume repeats nothing."""
    folder = start_then_signal(
        tmp_path, signal.SIGTERM, 50, *LONG_TINY_RUN, "trainer.checkpoint_every_s=3600"
    )
    assert read_summary(folder)["status"] == "interrupted"
    written = len(metric_rows(folder))
    assert load_checkpoint(folder / "checkpoint.pt")["epoch"] == written >= 50
    resume_in_process(folder)
    assert metric_rows(folder) == uninterrupted


def test_a_stop_in_a_long_epoch_loses_only_that_epoch_whatever_the_cadence(tmp_path):
    """Epochs of a second or more are checkpointed as they end: a stop mid-epoch resumes from the last one."""
    long_epochs = ["trainer.batch_size=1", "trainer.epochs=6", "model.hidden=[1024,1024]", "device=cpu"]
    folder = start_then_signal(tmp_path, signal.SIGTERM, 2, *long_epochs, "trainer.checkpoint_every_s=3600")
    summary = read_summary(folder)
    assert summary["status"] == "interrupted" and summary["epochs_completed"] < 6
    rows = metric_rows(folder)
    assert all(float(row["train_seconds"]) >= 1 for row in csv.DictReader((folder / "metrics.csv").open()))
    assert load_checkpoint(folder / "checkpoint.pt")["epoch"] == len(rows) >= 2


def test_the_console_shows_the_first_and_last_epochs_and_about_one_line_a_second(uninterrupted_run):
    """The epoch lines the console shows are the run's log records (nnexp.log keeps them all). At most
    one a second of the run's own time (its wall time, not only its epochs': on a loaded machine the
    bookkeeping between epochs takes seconds too), plus the first, the last and a warning."""
    log = (uninterrupted_run / "nnexp.log").read_text()
    lines = re.findall(r"^\[[^]]*\]\[INFO\] (epoch \d+/400 .*)$", log, flags=re.M)
    assert lines[0].startswith("epoch 1/400 ") and lines[-1].startswith("epoch 400/400 ")
    wall_time = read_summary(uninterrupted_run)["wall_time_s"]
    assert len(lines) <= wall_time / 1.0 + 3
    assert len(metric_rows(uninterrupted_run)) == 400  # metrics.csv keeps every epoch


@pytest.mark.parametrize(
    ("override", "said"),
    [
        ("trainer.checkpoint_every_s=-1", "trainer.checkpoint_every_s=-1 is not allowed"),
        ("trainer.checkpoint_every_s=often", "trainer.checkpoint_every_s=often is not allowed"),
        ("diagnostics.probe_every=0", "diagnostics.probe_every=0 is not allowed"),
    ],
)
def test_a_bad_cadence_is_refused_in_one_line_before_anything_is_created(
    tmp_path, monkeypatch, override, said
):
    """The command prints this ConfigError as its one line, exit code 2 (a config refusal's exit code and
    line are checked on the command in tests/test_epoch_log.py)."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as refused:
        preflight([override])
    assert said in str(refused.value) and "\n" not in str(refused.value)
    assert refused.value.exit_code == 2
    assert not (tmp_path / "outputs").exists()


def tiny_diagnostics(epochs: int, probe_every: int | str) -> tuple[Diagnostics, torch.nn.Module]:
    from omegaconf import OmegaConf

    inputs, targets = torch.randn(32, 4), torch.arange(32) % 3
    bundle = DataBundle(DataSpec("tiny", "classification", (4,), 3),
                        TensorSplit(inputs, targets), None, TensorSplit(inputs, targets))  # fmt: skip
    options = OmegaConf.create(
        {"enabled": True, "probe_rows": 16, "probe_every": probe_every, "after_epochs": 5, "after_steps": 0,
         "dead_relu_share": 0.5, "gradient_ratio": 1000, "expect": []}
    )  # fmt: skip
    trainer = OmegaConf.create({"epochs": epochs, "batch_size": 8, "stuck_epochs": 0})
    return Diagnostics(bundle, "cross_entropy", options, trainer, 4), MLP((4,), 3, hidden=[8])


@pytest.mark.parametrize(
    ("epochs", "probe_every", "probed"),
    [
        (30, "auto", list(range(1, 31))),  # a short run: every epoch, as before
        (100, "auto", [*range(1, 11), *range(12, 101, 4)]),  # the fish preset's
        (2000, "auto", [*range(1, 11), *range(80, 2001, 80)]),  # a long one: 35 probes
        (25, 7, [*range(1, 11), 14, 21, 25]),
    ],
)
def test_the_probe_runs_on_the_first_epochs_then_on_its_cadence_and_at_the_last(epochs, probe_every, probed):
    diagnostics, model = tiny_diagnostics(epochs, probe_every)
    seen = []
    for epoch in range(1, epochs + 1):
        row = {"epoch": epoch, "train_loss": 1.0, "train_accuracy": 0.5}
        diagnostics.after_epoch(model, torch.nn.functional.cross_entropy, row)
        if any(key.startswith("grad_norm/") for key in row):
            seen.append(epoch)
    assert seen == probed
    assert PROBE_FIRST_EPOCHS == 10


def test_a_relu_layer_dead_in_two_probes_running_is_found_across_unprobed_epochs():
    watch = TrainingWatch(Chance(accuracy=0.1), WatchOptions(stuck_epochs=0))
    rows = [{"epoch": epoch, "train_loss": 1.0, "train_accuracy": 0.9} for epoch in range(1, 8)]
    rows[1]["dead_relu/layers.2"] = 0.9  # probed at epochs 2 and 6 only, dead both times
    rows[5]["dead_relu/layers.2"] = 0.95
    found = {row["epoch"]: [finding.code for finding in watch.update(row)] for row in rows}
    assert found[6] == ["dead-relu"] and all(not codes for epoch, codes in found.items() if epoch != 6)
