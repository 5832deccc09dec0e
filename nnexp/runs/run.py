"""run(cfg): one run's story, from start to summary: build, train (or find a learning rate), evaluate, record.

The objects come from train/build.py, the epoch loop from runs/fit.py; this module keeps the order of
events and what the run folder says about them, whatever way the run ends.
"""

from __future__ import annotations

import logging
import math
import time
import traceback
from dataclasses import replace
from pathlib import Path
from typing import Any

import rich
from omegaconf import DictConfig
from rich.console import Console

from nnexp.config.job import check_job
from nnexp.data.tasks import task_of
from nnexp.diagnostics.baselines import Baselines
from nnexp.diagnostics.monitor import Diagnostics
from nnexp.errors import OutputError, UserError, command_line, environment_fault
from nnexp.models.summary import format_parameter_counts, parameter_counts
from nnexp.runs.best import restore_best, weights_to_test
from nnexp.runs.checkpoint import training_state
from nnexp.runs.console import diagnostics_table, results_table
from nnexp.runs.end_of_run import NOTHING_DRAWN, EndOfRun, draw_pictures
from nnexp.runs.epoch_log import restore_metrics
from nnexp.runs.fit import fit, sample
from nnexp.runs.folder import PAGE_FILE, VOCAB_FILE, RunFolder, code_version, nnexp_version
from nnexp.runs.launch import on_devices, run_on_devices
from nnexp.runs.loggers import build_loggers, finish_loggers
from nnexp.runs.lr_range import find_lr_and_record
from nnexp.runs.provenance import provenance
from nnexp.runs.result import RunResult
from nnexp.runs.resume import Resumed, save_config_if_changed
from nnexp.runs.summary import RunSummary
from nnexp.train.build import Experiment, build, describe, loops_for, steps_per_epoch
from nnexp.train.distributed import recorded_world_size
from nnexp.train.losses import resolve_loss_name
from nnexp.train.memory import refuse_what_does_not_fit
from nnexp.train.metrics import better
from nnexp.train.safeguards import Diverged, StopOnSignal, TrainingInterrupted
from nnexp.train.threads import given_back as threads_given_back

log = logging.getLogger("nnexp")

PARAMETERS_FILE = "parameters.json"  # per-layer parameter counts, in the run folder


def run(
    cfg: DictConfig,
    run_dir: Path,
    console: Console | None = None,
    resume: bool = False,
    end: EndOfRun = NOTHING_DRAWN,
    assigned: dict[str, Any] | None = None,
) -> RunResult:
    """Train and evaluate the experiment `cfg` describes, writing every record into `run_dir`.

    With `resume`, continue from the checkpoint in `run_dir`. The folder is locked while this process
    writes it: a second process on it is refused in one line. `end` draws the pictures and the page (none
    by default); `assigned`: a parallel sweep job's own GPU and threads. torch's threads are given back.
    """
    if on_devices(cfg, run_dir, resume):  # trainer.devices > 1: its ranks run it (runs/launch.py)
        return run_on_devices(run, cfg, run_dir, console, resume, end, assigned)
    folder = RunFolder(run_dir)
    with folder.lock(), threads_given_back():
        resumed = Resumed.load(folder, cfg) if resume else None
        return _run(cfg, folder, console or rich.get_console(), resumed, end, assigned)


def _run(
    cfg: DictConfig,
    folder: RunFolder,
    console: Console,
    resumed: Resumed | None,
    end: EndOfRun,
    assigned: dict[str, Any] | None,
) -> RunResult:
    started = time.time()
    summary = RunSummary.started(
        seed=cfg.get("seed"),
        started_at=_timestamp(started),
        nnexp_version=nnexp_version(),
        code_version=code_version(),
        provenance=provenance(cfg, resumed.threads if resumed is not None else None),
        assigned=assigned,
        world_size=recorded_world_size(),  # trainer.devices > 1: the ranks it trains on (runs/launch.py)
    )
    experiment, restored = None, None
    if resumed is not None and resumed.is_finished:
        # The console only: the run's own log stays as its training left it.
        console.print(
            f"{folder.path} completed all {resumed.epoch} epochs: nothing to resume", soft_wrap=True
        )
        metrics = (resumed.previous.metrics or {}).get("final", {})
        if not (folder.path / PAGE_FILE).is_file():  # a disk that filled as the run ended: the page now
            end.page(folder.path)
        return RunResult(folder.path, "completed", metrics, resumed.previous.to_json())
    # From here a SIGINT/SIGTERM stops the run: at once while it is being set up (every write is atomic),
    # and once training starts at the next batch boundary, never half-way through a step.
    with StopOnSignal() as stop:
        stop.at_once()
        if resumed is not None:
            # Nothing is written until the checkpoint is loaded into what this config builds.
            experiment = build(cfg)
            restored = resumed.restore(experiment, cfg)
            restore_best(experiment, folder)  # the best weights so far, from checkpoint_best.pt
            save_config_if_changed(folder, cfg)
            summary.resumed(resumed.previous, resumed.epoch, _timestamp(started))
        loggers: list[Any] = []
        failed = False
        begun: list[Baselines] = []  # begun in a child as the data is loaded, while the model is built
        try:
            # Inside the try: a stop that lands just after this write is still recorded as an interruption.
            folder.write_summary(summary)
            check_job(cfg)  # a sweep job's own values are first seen here (one preflight passed: not again)
            # A mistake in the data is found before any logger starts; the baselines begin as it loads.
            begin = None if cfg.get("lr_find") else lambda data: begun.append(Baselines.of_run(data, cfg))
            experiment = experiment or build(cfg, begin)
            loggers = build_loggers(cfg, folder.path)
            experiment.loggers = loggers
            summary.described(describe(experiment, cfg))
            _record_parameters(experiment, folder, cfg.trainer)
            summary.initial_loss = start_diagnostics(experiment, cfg)
            summary.found(_findings(experiment))
            end.training_starts()  # look/ imports matplotlib while the epochs run
            stop.check()  # a stop asked for while it was set up, whose exception a library swallowed
            if cfg.get("lr_find"):  # +lr_find=exponential: a learning-rate range test instead of training
                result = find_lr_and_record(
                    cfg, experiment, folder, console, summary, end.lr_find_plot, stop.check
                )
            else:
                if restored is None:  # resumable from the start, even if stopped before the first batch
                    folder.save_checkpoint(training_state(experiment, 0, [], cfg))
                stop.between_batches()
                result = _train_and_record(
                    cfg, experiment, folder, console, summary, stop, end, restored, begun
                )
        except BaseException as error:
            failed = True
            # A full disk or a refused write met anywhere (a picture, a logger): one line, exit code 4.
            fault = None
            if isinstance(error, OSError):
                fault = environment_fault(error, folder.path, folder.then())
            said = fault or error
            # the exit code of a user's mistake, so a sweep's exit code can say whose mistake it was
            exit_code = said.exit_code if isinstance(said, UserError) else None
            summary.stopped(
                _status_after(error), str(said) or type(error).__name__, exit_code, folder.epochs_recorded()
            )
            summary.found(_findings(experiment, getattr(error, "finding", None)))
            if isinstance(error, TrainingInterrupted) and folder.checkpoint_path.is_file():
                summary.resume_with = command_line("nnexp", f"resume={folder.path}")
            if not isinstance(error, (UserError, KeyboardInterrupt, TrainingInterrupted)) and fault is None:
                log.error("run failed:\n%s", traceback.format_exc())
            if fault is not None:
                raise fault from None
            raise
        finally:
            for baselines in begun:  # a run that ends before it asks for them: their child is stopped
                baselines.cancel()
            summary.ran_for(time.time() - started)
            late_fault = None  # a write refused after the run's own end: said unless a failure is said
            try:
                folder.write_summary(summary)
            except OutputError as error:
                late_fault = error
            try:  # the pictures after the results: the views' (queued by end.views), learning_curves.png
                if summary.status != "requeued":  # requeued: the time to the limit is for the checkpoint
                    late_fault = draw_pictures(end, folder, summary, stop, started) or late_fault
            finally:
                finish_loggers(loggers, summary.to_json())
            if summary.status != "requeued":
                try:
                    end.page(folder.path)  # report.html, last: it embeds every view written before it
                except OutputError as error:
                    late_fault = late_fault or error
            if late_fault is not None and not failed:
                raise late_fault
    return replace(result, summary=summary.to_json())  # as written last, wall time included


def _timestamp(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(seconds))


def _status_after(error: BaseException) -> str:
    if isinstance(error, (TrainingInterrupted, KeyboardInterrupt)):
        return "requeued" if getattr(error, "requeue", False) else "interrupted"
    return "diverged" if isinstance(error, Diverged) else "failed"


def _train_and_record(
    cfg: DictConfig,
    experiment: Experiment,
    folder: RunFolder,
    console: Console,
    summary: RunSummary,
    stop: StopOnSignal,
    end: EndOfRun,
    restored: tuple[int, list[dict[str, Any]]] | None = None,
    begun: list[Baselines] | None = None,
) -> RunResult:
    if task_of(experiment.data.spec.task).generates_text:
        folder.write_json(VOCAB_FILE, experiment.data.vocab_record())  # so text can be generated later
    start_epoch, history = restored or (0, [])
    if restored is not None:
        restore_metrics(folder, history, cfg.trainer)  # the rows trainer.log_every_n_epochs writes
        log.info("resuming after epoch %d of %d", start_epoch, cfg.trainer.epochs)
    if experiment.diagnostics is not None:
        experiment.diagnostics.replay(history)
    history = fit(experiment, cfg, folder, console, stop, start_epoch, history)
    summary.found(_findings(experiment))
    stopper, early_stopping = experiment.early_stopping, None
    if stopper is not None:
        early_stopping = {
            "stopped_early": len(history) < cfg.trainer.epochs,
            "monitor": stopper.monitor,
            "best": stopper.best,
            "best_epoch": stopper.best_epoch,
            "restored_best": stopper.restore_best and stopper.best_state is not None,
        }
        stopper.restore(experiment.model)
    summary.trained(history, early_stopping)
    tested, last_weights = weights_to_test(experiment, cfg.trainer)  # trainer.test_on=best: the best's
    summary.kept_best(tested)

    task = task_of(experiment.data.spec.task)
    evaluate_split = loops_for(experiment, cfg.trainer)[1]
    final = {
        name: evaluate_split(experiment.model, split, experiment.loss_fn)
        for name, split in experiment.data.splits().items()
    }
    if task.generates_text and cfg.get("generation"):
        sample(experiment, cfg.generation, folder, "final", cfg.seed)
    flat_final = {
        f"{split}_{name}": value for split, values in final.items() for name, value in values.items()
    }
    baselines = (begun or [Baselines.of_run(experiment.data, cfg)])[0].result()  # resumed: begun now
    summary.evaluated(flat_final, _best_of(history), baselines)

    summary.drew(end.views(experiment, cfg, folder.path))  # predictions.csv, per_class; pictures queued

    stop.check()
    folder.save_checkpoint({**training_state(experiment, len(history), history, cfg), **last_weights})
    summary.completed(folder.checkpoint_path.name)

    note = experiment.data.spec.details.get("test_split")  # "no test split: ...", when there is none
    console.print(results_table(final, baselines, note))
    if summary.per_class:
        console.print(end.per_class(summary.per_class))
    console.print(diagnostics_table(summary.diagnostics))
    log.info("run folder: %s", folder.path)
    return RunResult(folder.path, "completed", flat_final, summary.to_json(), experiment.model)


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


def _findings(experiment: Experiment | None, refusal: Any = None) -> list[dict[str, Any]]:
    """The learner diagnostics' findings so far, plus the one a refused setting carries."""
    found = experiment.diagnostics.to_list() if experiment and experiment.diagnostics else []
    if refusal is not None:
        found.append(refusal.to_dict())
    return found


def _record_parameters(experiment: Experiment, folder: RunFolder, trainer: DictConfig) -> None:
    """parameters.json and the log's table, the shapes from one example (not for a compiled model, which
    would compile again for it). A run too big for memory stops here."""
    with_shapes = not trainer.get("compile", False)
    example = next(iter(experiment.data.train.batches(1)))[0] if with_shapes else None
    counts = parameter_counts(experiment.model, example)
    log.info(format_parameter_counts(counts))
    folder.write_json(PARAMETERS_FILE, counts)
    refuse_what_does_not_fit(counts, experiment, trainer)
