"""run(cfg): one run's story, from start to summary: build, train (or find a learning rate), evaluate, record.

The objects come from train/build.py, the epoch loop from runs/fit.py; this module keeps the order of
events and what the run folder says about them, whatever way the run ends.
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import math
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import rich
from omegaconf import DictConfig
from rich.console import Console
from torch import nn

from nnexp.cli.checks import check_config
from nnexp.diagnostics.baselines import baselines_for
from nnexp.diagnostics.monitor import Diagnostics
from nnexp.errors import OutputError, UserError
from nnexp.look.page import write_run_page
from nnexp.look.plots import plot_lr_find, plot_run
from nnexp.look.views import per_class_view, write_views
from nnexp.models.summary import format_parameter_counts, parameter_counts
from nnexp.runs.checkpoint import training_state
from nnexp.runs.console import diagnostics_table, results_table
from nnexp.runs.epoch_log import restore_metrics
from nnexp.runs.fit import fit, sample
from nnexp.runs.folder import VOCAB_FILE, RunFolder, code_version, nnexp_version
from nnexp.runs.loggers import build_loggers, finish_loggers
from nnexp.runs.provenance import provenance
from nnexp.runs.resume import Resumed, save_config_if_changed
from nnexp.sweep.devices import job_assignment
from nnexp.train.build import Experiment, build, describe, loops_for, steps_per_epoch
from nnexp.train.losses import resolve_loss_name
from nnexp.train.lr_finder import CSV_FILE, PLOT_FILE, LrFinderOptions, LrFinderResult, find_lr
from nnexp.train.memory import refuse_what_does_not_fit
from nnexp.train.metrics import better
from nnexp.train.safeguards import Diverged, StopOnSignal, TrainingInterrupted

log = logging.getLogger("nnexp")

PARAMETERS_FILE = "parameters.json"  # per-layer parameter counts, in the run folder


@dataclass
class RunResult:
    run_dir: Path
    status: str
    metrics: dict[str, float]  # final values, e.g. test_accuracy
    summary: dict[str, Any]
    model: nn.Module | None = field(default=None, repr=False)


def run(cfg: DictConfig, run_dir: Path, console: Console | None = None, resume: bool = False) -> RunResult:
    """Train and evaluate the experiment `cfg` describes, writing every record into `run_dir`.

    With `resume`, continue from the checkpoint in `run_dir` instead of starting afresh. The folder is
    locked while this process writes it: a second process on it is refused in one line.
    """
    folder = RunFolder(run_dir)
    with folder.lock():
        return _run(cfg, folder, console or rich.get_console(), Resumed.load(folder, cfg) if resume else None)


def _run(cfg: DictConfig, folder: RunFolder, console: Console, resumed: Resumed | None) -> RunResult:
    started = time.time()
    summary: dict[str, Any] = {
        "status": "running",
        "seed": cfg.get("seed"),
        "started_at": _timestamp(started),
        "nnexp_version": nnexp_version(),
        "code_version": code_version(),
        "provenance": provenance(cfg),
    }
    if (given := job_assignment()) is not None:  # a parallel sweep job's own GPU and threads
        summary["assigned"] = given
    experiment, restored, earlier_wall_time = None, None, 0.0
    if resumed is not None and resumed.is_finished:
        # The console only: the run's own log stays as its training left it.
        console.print(
            f"{folder.path} completed all {resumed.epoch} epochs: nothing to resume", soft_wrap=True
        )
        metrics = resumed.previous.get("metrics", {}).get("final", {})
        return RunResult(folder.path, "completed", metrics, resumed.previous)
    # From here a SIGINT/SIGTERM stops the run: at once while it is being set up (every write is atomic),
    # and once training starts at the next batch boundary, never half-way through a step.
    with StopOnSignal() as stop:
        stop.at_once()
        if resumed is not None:
            # Nothing is written until the checkpoint is loaded into what this config builds.
            experiment = build(cfg)
            restored = resumed.restore(experiment, cfg)
            save_config_if_changed(folder, cfg)
            summary["started_at"] = resumed.previous.get("started_at", summary["started_at"])
            summary["resumed_at"] = [*resumed.previous.get("resumed_at", []), _timestamp(started)]
            summary["resumed_from_epoch"] = resumed.epoch
            earlier_wall_time = resumed.previous.get("wall_time_s") or 0.0
        folder.write_summary(summary)
        loggers: list[Any] = []
        try:
            check_config(cfg)  # again: a sweep job's own values are first seen here
            experiment = experiment or build(cfg)  # a mistake in the data is found before any logger starts
            loggers = build_loggers(cfg, folder.path)
            experiment.loggers = loggers
            summary.update(describe(experiment, cfg))
            _record_parameters(experiment, folder, cfg.trainer)
            initial_loss = start_diagnostics(experiment, cfg)
            if initial_loss is not None:
                summary["initial_loss"] = initial_loss
            _record_diagnostics(summary, experiment)
            if cfg.get("lr_find"):  # +lr_find=exponential: a learning-rate range test instead of training
                return _find_lr_and_record(cfg, experiment, folder, console, summary)
            if restored is None:  # resumable from the start, even if stopped before the first batch
                folder.save_checkpoint(training_state(experiment, 0, [], cfg))
            stop.between_batches()
            result = _train_and_record(cfg, experiment, folder, console, summary, stop, restored)
        except BaseException as error:
            summary["status"] = _status_after(error)
            summary["error"] = str(error) or type(error).__name__
            if isinstance(error, UserError):  # so a sweep's exit code can say whose mistake it was
                summary["exit_code"] = error.exit_code
            _record_diagnostics(summary, experiment, getattr(error, "finding", None))
            summary.setdefault("epochs_completed", folder.epochs_recorded())
            if isinstance(error, TrainingInterrupted) and folder.checkpoint_path.is_file():
                summary["resume_with"] = f"nnexp resume={folder.path}"
            if not isinstance(error, (UserError, KeyboardInterrupt, TrainingInterrupted)):
                log.error("run failed:\n%s", traceback.format_exc())
            raise
        finally:
            summary["wall_time_s"] = round(earlier_wall_time + time.time() - started, 3)
            with contextlib.suppress(OutputError):  # a full disk is already being reported
                folder.write_summary(summary)
            finish_loggers(loggers, summary)
            if summary.get("status") != "requeued":  # requeued: the time to the limit is for the checkpoint
                plot_run(folder.path)  # learning_curves.png
                write_run_page(folder.path)  # report.html, last: it embeds every view written before it
    return result


def _timestamp(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(seconds))


def _find_lr_and_record(
    cfg: DictConfig, experiment: Experiment, folder: RunFolder, console: Console, summary: dict[str, Any]
) -> RunResult:
    """The lr range test instead of training: lr_find.csv, lr_find.png and the suggestion in the summary.

    No checkpoint: a model trained at every lr in turn is no model to keep or resume. The sweep is
    short, so a stop signal ends it at once (KeyboardInterrupt) with nothing to resume.
    """
    options = LrFinderOptions.from_config(cfg.lr_find)
    trainer = cfg.trainer
    batch_size = len(experiment.data.train) if trainer.batch_size == "full" else trainer.batch_size
    log.info("lr range test: %d steps, lr %g to %g", options.num_steps, options.start_lr, options.end_lr)
    train_epoch = loops_for(experiment, trainer)[0]
    found = find_lr(experiment, options, batch_size, train_epoch, trainer.clip_grad_norm, cfg.seed)
    if found.stopped_early:
        log.info("lr range test stopped after %d steps: %s", len(found.lrs), found.stopped_early)
    _save_lr_find(found, folder)
    summary.update(mode="lr_find", lr_find=found.to_summary(), epochs_completed=0, status="completed")
    console.print(found.advice(), soft_wrap=True)  # one line, however long, for logs and scripts
    log.info("run folder: %s", folder.path)
    return RunResult(folder.path, "completed", {}, summary, experiment.model)


def _save_lr_find(result: LrFinderResult, folder: RunFolder) -> None:
    """lr_find.csv (step, lr, loss, smoothed_loss) and lr_find.png in the run folder."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["step", "lr", "loss", "smoothed_loss"])
    rows = zip(result.lrs, result.losses, result.smoothed_losses, strict=True)
    writer.writerows((step, *row) for step, row in enumerate(rows))
    folder.append_line(CSV_FILE, text.getvalue())  # one write of the whole table into the new folder
    try:
        plot_lr_find(result, folder.path / PLOT_FILE)
    except Exception as error:  # the numbers are in the csv; the picture is a bonus
        log.warning("could not plot the learning-rate sweep: %s", error)


def _status_after(error: BaseException) -> str:
    if isinstance(error, (TrainingInterrupted, KeyboardInterrupt)):
        return "requeued" if getattr(error, "requeue", False) else "interrupted"
    return "diverged" if isinstance(error, Diverged) else "failed"


def _train_and_record(
    cfg: DictConfig,
    experiment: Experiment,
    folder: RunFolder,
    console: Console,
    summary: dict[str, Any],
    stop: StopOnSignal,
    restored: tuple[int, list[dict[str, Any]]] | None = None,
) -> RunResult:
    if experiment.data.spec.task == "language_model":
        folder.write_json(VOCAB_FILE, experiment.data.vocab_record())  # so text can be generated later
    start_epoch, history = restored or (0, [])
    if restored is not None:
        restore_metrics(folder, history, cfg.trainer)  # the rows trainer.log_every_n_epochs writes
        log.info("resuming after epoch %d of %d", start_epoch, cfg.trainer.epochs)
    if experiment.diagnostics is not None:
        experiment.diagnostics.replay(history)
    history = fit(experiment, cfg, folder, console, stop, start_epoch, history)
    _record_diagnostics(summary, experiment)
    summary["epochs_completed"] = len(history)
    summary["train_time_s"] = round(sum(row["seconds"] for row in history), 3)

    if experiment.early_stopping is not None:
        stopper = experiment.early_stopping
        summary["early_stopping"] = {
            "stopped_early": len(history) < cfg.trainer.epochs,
            "monitor": stopper.monitor,
            "best": stopper.best,
            "best_epoch": stopper.best_epoch,
            "restored_best": stopper.restore_best and stopper.best_state is not None,
        }
        stopper.restore(experiment.model)

    task = experiment.data.spec.task
    evaluate_split = loops_for(experiment, cfg.trainer)[1]
    final = {
        name: evaluate_split(experiment.model, split, experiment.loss_fn)
        for name, split in experiment.data.splits().items()
    }
    if task == "language_model" and cfg.get("generation"):
        sample(experiment, cfg.generation, folder, "final", cfg.seed)
    flat_final = {
        f"{split}_{name}": value for split, values in final.items() for name, value in values.items()
    }
    summary["metrics"] = {"final": flat_final, "best": _best_of(history)}
    summary["baselines"] = baselines_for(
        experiment.data, resolve_loss_name(cfg.loss.name, experiment.data.spec), cfg.get("baselines")
    )

    summary.update(write_views(experiment, cfg, folder.path))  # predictions.csv, confusion matrix, pictures

    stop.check()
    folder.save_checkpoint(training_state(experiment, len(history), history, cfg))
    summary["checkpoint"] = folder.checkpoint_path.name
    summary["status"] = "completed"

    note = experiment.data.spec.details.get("test_split")  # "no test split: ...", when there is none
    console.print(results_table(final, summary["baselines"], note))
    if summary.get("per_class"):
        console.print(per_class_view(summary["per_class"]))
    console.print(diagnostics_table(summary["diagnostics"]))
    log.info("run folder: %s", folder.path)
    return RunResult(folder.path, "completed", flat_final, summary, experiment.model)


def _best_of(history: list[dict[str, Any]]) -> dict[str, float]:
    best: dict[str, float] = {}
    for row in history:
        for column, value in row.items():
            is_metric = column.startswith(("train_", "val_")) and column != "train_seconds"
            if is_metric and better(column, value, best.get(column, math.nan)):
                best[column] = value
    return best


def start_diagnostics(experiment: Experiment, cfg: DictConfig) -> dict[str, Any] | None:
    """Attach the learner diagnostics and run the checks on the untrained model and the data; returns the
    initial loss against the one an untrained model should score (None when disabled)."""
    loss_name = resolve_loss_name(cfg.loss.name, experiment.data.spec)
    steps = steps_per_epoch(experiment.data, cfg.trainer)
    experiment.diagnostics = Diagnostics(
        experiment.data, loss_name, cfg.diagnostics, cfg.trainer, steps, model=experiment.model
    )
    return experiment.diagnostics.before_training(experiment.model, experiment.loss_fn)


def _record_diagnostics(summary: dict[str, Any], experiment: Experiment | None, refusal: Any = None) -> None:
    """summary["diagnostics"]: the findings so far, plus the one a refused setting carries."""
    found = experiment.diagnostics.to_list() if experiment and experiment.diagnostics else []
    if refusal is not None:
        found.append(refusal.to_dict())
    summary["diagnostics"] = found


def _record_parameters(experiment: Experiment, folder: RunFolder, trainer: DictConfig) -> None:
    """parameters.json and the log's table, the shapes from one example (not for a compiled model, which
    would compile again for it). A run too big for memory stops here."""
    with_shapes = not trainer.get("compile", False)
    example = next(iter(experiment.data.train.batches(1)))[0] if with_shapes else None
    counts = parameter_counts(experiment.model, example)
    log.info(format_parameter_counts(counts))
    folder.write_json(PARAMETERS_FILE, counts)
    refuse_what_does_not_fit(counts, experiment, trainer)
