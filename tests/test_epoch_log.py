"""trainer.log_every_n_epochs=N (issue 17): metrics.csv and the loggers get every Nth epoch's row, the last
epoch's and the row of the epoch a run stopped after; every written row is the row an every-epoch run
writes for that epoch, the summary is the same, and a run stopped and resumed has the rows of one that
never stopped. A value that is not a whole number >= 1, or an eval_every it does not fit, is refused in
one line before any folder exists.

Runs are trained in this process (`nnexp.run`; the ones only read, once per session: `session_runs`);
the stops are signals to real `nnexp` processes, and their resumes run in this process as
`nnexp resume=` runs them."""

from __future__ import annotations

import csv
import signal
from pathlib import Path

import pytest

import nnexp
from conftest import compose_config, nnexp_exit_code, read_summary, resume_in_process, start_then_signal
from nnexp.cli.preflight import preflight
from nnexp.config.checks import check_config
from nnexp.errors import ConfigError
from nnexp.runs.checkpoint import load_checkpoint
from nnexp.train.safeguards import Diverged

# Full-batch digits, a few milliseconds an epoch: the runs the switch is for.
LONG_TINY_RUN = ["trainer.batch_size=full", "trainer.epochs=150", "optim=sgd", "optim.lr=0.05", "device=cpu"]
TIMING = {"train_seconds", "seconds"}
HOURLY_CHECKPOINTS = ["trainer.checkpoint_every_s=3600"]  # only those a stop forces, in these short runs


def metric_rows(folder: Path) -> list[dict[str, str]]:
    """metrics.csv (header included, as each row's keys) without the timing columns no two runs share."""
    with (folder / "metrics.csv").open(newline="") as handle:
        return [{k: v for k, v in row.items() if k not in TIMING} for row in csv.DictReader(handle)]


def epochs_of(rows: list[dict[str, str]]) -> list[int]:
    return [int(row["epoch"]) for row in rows]


def train(folder: Path, *args: str) -> Path:
    result = nnexp.run(list(args), output_dir=folder)
    assert result.status == "completed", result.status
    return folder


@pytest.fixture(scope="module")
def every_epoch(session_runs) -> Path:
    """The reference: the same run with a row every epoch (the default)."""
    return session_runs(*LONG_TINY_RUN)


@pytest.fixture(scope="module")
def every_7th(session_runs) -> Path:
    return session_runs(*LONG_TINY_RUN, "trainer.log_every_n_epochs=7")


def test_rows_are_every_nth_epoch_plus_the_last_and_each_is_the_every_epoch_runs_row(every_epoch, tmp_path):
    """N=50 on 150 epochs: rows 50, 100, 150, as an every-epoch run wrote them, under the same header
    (the first epoch's, so the probe's columns stay though epochs 50 and 100 were not probed); the
    summary's best values are over every epoch, as before."""
    folder = train(tmp_path / "run", *LONG_TINY_RUN, "trainer.log_every_n_epochs=50")
    reference = metric_rows(every_epoch)
    rows = metric_rows(folder)
    assert epochs_of(rows) == [50, 100, 150]
    assert rows == [row for row in reference if int(row["epoch"]) % 50 == 0]
    assert not any(rows[0][column] for column in rows[0] if column.startswith("grad_norm/"))
    assert any(column.startswith("grad_norm/") and rows[-1][column] for column in rows[-1])
    summary, expected = read_summary(folder), read_summary(every_epoch)
    assert summary["epochs_completed"] == 150 and summary["status"] == "completed"
    assert summary["metrics"] == expected["metrics"]
    assert (folder / "learning_curves.png").is_file() and (folder / "report.html").is_file()


def test_the_last_epoch_is_written_when_it_is_not_a_multiple_of_n(every_7th, every_epoch):
    rows = metric_rows(every_7th)
    assert epochs_of(rows) == [*range(7, 150, 7), 150]
    reference = {row["epoch"]: row for row in metric_rows(every_epoch)}
    assert rows == [reference[row["epoch"]] for row in rows]


def test_the_epoch_early_stopping_stops_after_is_written(tmp_path):
    """train_loss must improve by 10 to count: best at epoch 1, patience 4 runs out at epoch 6."""
    folder = train(
        tmp_path / "run",
        *[arg for arg in LONG_TINY_RUN if not arg.startswith("trainer.epochs=")],
        "trainer.epochs=20",
        "trainer.log_every_n_epochs=4",
        "regularization=early_stopping",
        "regularization.early_stopping.monitor=train_loss",
        "regularization.early_stopping.patience=4",
        "regularization.early_stopping.min_delta=10",
    )
    assert epochs_of(metric_rows(folder)) == [4, 6]
    summary = read_summary(folder)
    assert summary["early_stopping"]["stopped_early"] and summary["early_stopping"]["best_epoch"] == 1
    assert summary["epochs_completed"] == 6


def test_a_diverged_run_writes_the_last_epoch_it_finished(tmp_path):
    """Full batch at lr 1e6: epoch 1 trains from the untrained loss, epoch 2 explodes. Epoch 1 is not due
    (N=5) and is written all the same, so the record ends where training did."""
    run = ["trainer.batch_size=full", "trainer.epochs=10", "optim=sgd", "optim.lr=1e6", "model.hidden=[128]",
           "model.dropout=0", "device=cpu", "trainer.log_every_n_epochs=5"]  # fmt: skip
    folder = tmp_path / "run"
    with pytest.raises(Diverged) as diverged:  # what `nnexp` ends with exit code 3 for
        nnexp.run(run, output_dir=folder)
    assert diverged.value.exit_code == 3
    summary = read_summary(folder)
    assert summary["status"] == "diverged" and summary["epochs_completed"] == 1
    assert epochs_of(metric_rows(folder)) == [1]


def test_a_stop_signal_writes_its_epoch_and_the_resumed_run_has_the_uninterrupted_rows(tmp_path, every_7th):
    """SIGTERM: the short epoch finishes and is written and checkpointed, due or not. The resume drops
    that row unless it is due, so the run ends with every 7th epoch and the last, each once."""
    folder = start_then_signal(
        tmp_path, signal.SIGTERM, 5, *LONG_TINY_RUN, "trainer.log_every_n_epochs=7", *HOURLY_CHECKPOINTS
    )
    assert read_summary(folder)["status"] == "interrupted"
    rows = metric_rows(folder)
    stopped_at = load_checkpoint(folder / "checkpoint.pt")["epoch"]
    assert epochs_of(rows)[-1] == stopped_at == read_summary(folder)["epochs_completed"]
    assert all(epoch % 7 == 0 for epoch in epochs_of(rows)[:-1]) and stopped_at >= 35
    resume_in_process(folder)
    assert metric_rows(folder) == metric_rows(every_7th)
    assert read_summary(folder)["epochs_completed"] == 150


def test_a_run_killed_between_checkpoints_resumes_to_the_uninterrupted_rows(tmp_path, every_7th):
    """SIGKILL with an hour's checkpoint cadence: rows are written past the last checkpoint (the one before
    training, or one an epoch of over a second forced on a loaded machine); the resume drops them, writes
    the due rows again under the same header, and none twice."""
    folder = start_then_signal(
        tmp_path, signal.SIGKILL, 5, *LONG_TINY_RUN, "trainer.log_every_n_epochs=7", *HOURLY_CHECKPOINTS
    )
    assert load_checkpoint(folder / "checkpoint.pt")["epoch"] <= epochs_of(metric_rows(folder))[-1]
    resume_in_process(folder)
    assert metric_rows(folder) == metric_rows(every_7th)


def test_tensorboard_and_mlflow_follow_the_cadence(tmp_path):
    """Scalars, weight histograms and MLflow metrics at epochs 3, 6 and 7 only, as metrics.csv; the
    final metrics at the end, as always."""
    from mlflow import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    store = tmp_path / "mlruns"
    folder = train(
        tmp_path / "run",
        "trainer.epochs=7",
        "trainer.batch_size=full",
        "trainer.log_every_n_epochs=3",
        "device=cpu",
        "logger=[csv,tensorboard,mlflow]",
        f"logger.mlflow.store={store}",
    )
    assert epochs_of(metric_rows(folder)) == [3, 6, 7]
    events = EventAccumulator(str(folder / "tensorboard"), size_guidance={"histograms": 0, "scalars": 0})
    events.Reload()
    assert [event.step for event in events.Scalars("train_loss")] == [3, 6, 7]
    assert [event.step for event in events.Scalars("val_accuracy")] == [3, 6, 7]
    assert [event.step for event in events.Histograms("weights/layers.1.weight")] == [3, 6, 7]
    assert [event.step for event in events.Scalars("final/test_accuracy")] == [7]
    client = MlflowClient(f"sqlite:///{store / 'mlflow.db'}")
    [run] = client.search_runs([client.get_experiment_by_name("nnexp").experiment_id])
    assert [metric.step for metric in client.get_metric_history(run.info.run_id, "train_loss")] == [3, 6, 7]
    assert "final_test_accuracy" in run.data.metrics


@pytest.mark.parametrize(
    ("overrides", "said"),
    [
        (["trainer.log_every_n_epochs=0"], "trainer.log_every_n_epochs=0 is not allowed: use a whole number"),
        (["trainer.log_every_n_epochs=1.5"], "trainer.log_every_n_epochs=1.5 is not allowed"),
        (["trainer.log_every_n_epochs=often"], "trainer.log_every_n_epochs=often is not allowed"),
        (["trainer.log_every_n_epochs=null"], "trainer.log_every_n_epochs=None is not allowed"),
        (
            ["trainer.eval_every=3", "trainer.log_every_n_epochs=2"],
            "trainer.eval_every=3 does not fit trainer.log_every_n_epochs=2",
        ),
    ],
)
def test_a_bad_epoch_cadence_is_refused_in_one_line_before_anything_is_created(
    tmp_path, monkeypatch, overrides, said
):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as refused:  # what `nnexp OVERRIDES` prints, exit code 2
        preflight(overrides)
    assert said in str(refused.value) and "\n" not in str(refused.value)
    assert refused.value.exit_code == 2
    assert not (tmp_path / "outputs").exists()


def test_the_command_refuses_a_bad_epoch_cadence_with_exit_code_2_and_one_line(tmp_path, monkeypatch, capsys):
    """The command's main() in this process (a process refused so: tests/test_usage_errors.py)."""
    monkeypatch.chdir(tmp_path)
    assert nnexp_exit_code(monkeypatch, "trainer.log_every_n_epochs=0") == 2
    stderr = capsys.readouterr().err
    assert stderr.startswith("nnexp: error: trainer.log_every_n_epochs=0 is not allowed: use a whole")
    assert stderr.count("\n") == 1, stderr
    assert not (tmp_path / "outputs").exists()


@pytest.mark.parametrize(
    "overrides",
    [
        ["trainer.eval_every=10", "trainer.log_every_n_epochs=5"],  # every evaluation is written
        ["trainer.eval_every=2", "trainer.log_every_n_epochs=10"],  # every written row has one
        ["trainer.log_every_n_epochs=100"],  # the default eval_every=1
        ["trainer.eval_every=3", "trainer.log_every_n_epochs=2", "data=fish"],  # nothing is evaluated
    ],
)
def test_cadences_that_fit_are_accepted(overrides):
    check_config(compose_config(*overrides))
