"""The epoch loop: train, evaluate on the cadence, record a metrics row, step the schedules, checkpoint.

It records as it goes (the progress bar, metrics.csv, the loggers, the checkpoint), so it lives with the
run's records; the training step it repeats is train/loop.py.
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from rich.console import Console

from nnexp.data.tasks import task_of
from nnexp.diagnostics.training import Chance
from nnexp.runs.best import save_best
from nnexp.runs.cadence import (
    CHECKPOINT_EVERY_S,
    CONSOLE_EVERY_S,
    FINISH_EPOCH_UNDER_S,
    LONG_EPOCH_WRITE_SHARE,
    Every,
)
from nnexp.runs.checkpoint import training_state
from nnexp.runs.console import TrainingProgress, format_epoch_line
from nnexp.runs.epoch_log import EpochLog
from nnexp.runs.folder import SAMPLES_FILE, RunFolder
from nnexp.runs.profile import StepProfiler
from nnexp.runs.snapshots import Snapshots
from nnexp.runs.steps import StepLog
from nnexp.train import overfit
from nnexp.train.augment import augmented
from nnexp.train.build import Experiment, loops_for, steps_per_epoch
from nnexp.train.distributed import global_batch_size, stop_together
from nnexp.train.generation import generate
from nnexp.train.losses import resolve_loss_name
from nnexp.train.safeguards import DivergenceGuard, StopOnSignal

log = logging.getLogger("nnexp")


def fit(
    experiment: Experiment,
    cfg: DictConfig,
    folder: RunFolder,
    console: Console,
    stop: StopOnSignal | None = None,
    start_epoch: int = 0,
    history: list[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """The epoch loop: train, evaluate on the cadence, record a metrics row, step the schedule.

    Every epoch's row goes to metrics.csv and the loggers, or every Nth with `trainer.log_every_n_epochs`
    (runs/epoch_log.py). The whole training state is checkpointed every
    `trainer.checkpoint_every_s` seconds, after every epoch of a second or more, after the last epoch, on a
    stop signal and when the run stops early, so a stopped run resumes exactly (from its last checkpoint;
    resume drops the rows after it).
    """
    trainer = cfg.trainer
    # Plain values: a config lookup costs microseconds, and a tiny epoch is a few milliseconds.
    epochs, eval_every, clip_grad_norm, seed = (
        trainer.epochs,
        trainer.eval_every,
        trainer.clip_grad_norm,
        cfg.seed,
    )
    data, task = experiment.data, task_of(experiment.data.spec.task)
    batch_size = len(data.train) if trainer.batch_size == "full" else global_batch_size(trainer.batch_size)
    stop = stop_together(stop, FINISH_EPOCH_UNDER_S)  # several ranks stop at the same batch (distributed.py)
    batches_per_epoch = steps_per_epoch(data, trainer)
    names = task.metrics
    history = list(history or [])
    train_epoch, evaluate_split = loops_for(experiment, trainer)
    diagnostics = experiment.diagnostics
    # What guessing scores (the diagnostics computed it already): a loss far above it has exploded.
    chance = (
        diagnostics.chance if diagnostics else Chance.of(data, resolve_loss_name(cfg.loss.name, data.spec))
    )
    known = (chance.metric, chance.loss) if chance.loss is not None else None
    divergence = DivergenceGuard(experiment.optimizer, experiment.device, chance=known)
    generation = cfg.get("generation") if task.generates_text else None
    # Augmentation changes only the batches the model trains on; evaluation sees the images as they are.
    train = data.train if experiment.augment is None else augmented(data.train, experiment.augment)
    overfit_batches = trainer.get("overfit_batches")  # debug=overfit: the same few batches until learned
    if overfit_batches:
        train = overfit.start(train, batch_size, overfit_batches, experiment.model)
    checkpoints = Every(trainer.get("checkpoint_every_s", CHECKPOINT_EVERY_S))
    console_lines = Every(CONSOLE_EVERY_S)
    saved_config = OmegaConf.to_container(cfg, resolve=True)  # the same for every checkpoint of the run
    last_epoch_s = math.inf  # a stop signal lets a short epoch finish, so it is checkpointed
    write_s = 0.0  # how long the last checkpoint took to write
    shuffle = trainer.get("shuffle", True)
    eval_train = trainer.get("eval_train", False)  # train_eval_* columns: the training rows re-scored

    # steps.csv with trainer.log_every_n_steps; None (off, the default) costs a step nothing
    steps = StepLog.open(folder.path, trainer.get("log_every_n_steps"), start_epoch, batches_per_epoch)
    # metrics.csv and the loggers: every epoch's row, or every Nth with trainer.log_every_n_epochs
    records = EpochLog(folder, experiment.loggers, experiment.model, trainer)
    snapshots = Snapshots.start(experiment, cfg, folder.path, start_epoch)  # training.gif's frames

    progress = TrainingProgress(console, epochs, batches_per_epoch)
    profiler = StepProfiler(folder.path, trainer.get("profile_steps"), experiment.device)  # debug=profile
    with progress, folder.writing_metrics(), records.writing(), profiler:

        def after_batch(loss: torch.Tensor) -> None:
            progress.on_batch(loss)
            if profiler.on:
                profiler.step()
            divergence.after_batch(loss)
            if steps is not None:
                steps.after_step(loss, epoch, experiment.optimizer)
            if stop is not None and last_epoch_s >= FINISH_EPOCH_UNDER_S:
                stop.check()

        for epoch in range(start_epoch + 1, epochs + 1):
            epoch_started = time.perf_counter()
            progress.start_epoch(epoch)
            divergence.start_epoch(epoch)
            # The data order depends only on (seed, epoch), so a run can be resumed exactly;
            # trainer.shuffle=false keeps the rows' own order every epoch, as the lectures' fish run does.
            order = torch.Generator().manual_seed(seed * 100_003 + epoch) if shuffle else None
            batches = itertools.islice(train.batches(batch_size, order), batches_per_epoch)
            train_metrics = train_epoch(
                experiment.model,
                batches,
                experiment.loss_fn,
                experiment.optimizer,
                penalty=experiment.penalty,
                clip_grad_norm=clip_grad_norm,
                on_batch=after_batch,
            )
            train_seconds = time.perf_counter() - epoch_started
            divergence.after_epoch(train_metrics)
            tokens = train_metrics.pop("tokens", None)  # a language model counts the tokens it trained on

            row: dict[str, Any] = {"epoch": epoch}
            row.update({f"train_{name}": value for name, value in train_metrics.items()})
            due = epoch % eval_every == 0 or epoch == epochs
            if eval_train:  # the running means above mix the weights of every batch; this is the epoch's end
                scored = evaluate_split(experiment.model, data.train, experiment.loss_fn) if due else {}
                row.update({f"train_eval_{name}": scored.get(name, math.nan) for name in names})
            if data.val is not None:
                val_metrics = (
                    evaluate_split(experiment.model, data.val, experiment.loss_fn)
                    if due
                    else dict.fromkeys(names, math.nan)
                )
                row.update({f"val_{name}": value for name, value in val_metrics.items()})
            row["lr"] = experiment.optimizer.param_groups[0]["lr"]
            if tokens is not None:
                row["tokens_per_s"] = round(tokens / train_seconds)
            row["train_seconds"] = round(train_seconds, 4)
            warned = False
            if diagnostics is not None:
                warned = diagnostics.after_epoch(experiment.model, experiment.loss_fn, row)
            row["seconds"] = round(time.perf_counter() - epoch_started, 4)

            if steps is not None:
                steps.end_epoch()
            history.append(row)
            last = epoch == epochs
            if console_lines.due(force=epoch == start_epoch + 1 or last or warned):
                log.info(format_epoch_line(epoch, epochs, row))
            if generation and generation.every and epoch % generation.every == 0 and epoch < epochs:
                sample(experiment, generation, folder, f"epoch {epoch}", seed * 100_003 + epoch)

            step_scheduler(experiment, row)
            stopper = experiment.early_stopping
            stop_early = stopper is not None and stopper.update(epoch, row, experiment.model)
            if experiment.best is not None:  # checkpoint_best.pt, trainer.test_on=best
                experiment.best.update(epoch, row, experiment.model)
            learned = bool(overfit_batches) and overfit.learned(row)
            stop_stuck = (
                diagnostics is not None and diagnostics.stuck and trainer.get("stop_when_stuck", False)
            )
            stopping = stop_early or stop_stuck or learned
            stopping = stopping or (stop is not None and stop.requested is not None)
            records.add(row, stopping=stopping)  # the epoch a run stops after is always written
            # a signal since then still saves this epoch (its row, if held, is written as the loop ends)
            stopping = stopping or (stop is not None and stop.requested is not None)
            snapshots.after_epoch(epoch, experiment.model, last=last or stopping)
            epoch_s = time.perf_counter() - epoch_started
            long_epoch = epoch_s >= FINISH_EPOCH_UNDER_S and write_s <= LONG_EPOCH_WRITE_SHARE * epoch_s
            if checkpoints.due(force=last or stopping or long_epoch):
                writing = time.perf_counter()
                save_best(folder, experiment, history, saved_config)  # first: the two agree on the best
                folder.save_checkpoint(training_state(experiment, epoch, history, saved_config))
                write_s = time.perf_counter() - writing
            if stop is not None:
                stop.check()  # a signal during a short epoch: acted on now that the epoch is saved
            last_epoch_s = time.perf_counter() - epoch_started
            if stop_stuck:
                log.info("stopping: the loss is stuck (trainer.stop_when_stuck=true)")
                break
            if learned:
                break
            if stop_early:
                log.info(
                    "early stopping: %s has not improved for %d epochs (best %.4g at epoch %d)",
                    stopper.monitor,
                    stopper.patience + 1,
                    stopper.best,
                    stopper.best_epoch,
                )
                break
    if overfit_batches:
        log.info(overfit.verdict(overfit_batches, history))
    return history


def sample(experiment: Experiment, generation: DictConfig, folder: RunFolder, label: str, seed: int) -> None:
    """Continue the prefix with the model as it is now: shown in the console, appended to samples.txt."""
    text = generate(
        experiment.model,
        experiment.data.vocab,
        experiment.data.tokenizer,
        generation.prefix,
        generation.num_tokens,
        generation.temperature,
        torch.Generator().manual_seed(seed),
    )
    log.info("sample (%s): %s", label, text)
    folder.append_line(SAMPLES_FILE, f"{label}: {text}")


def step_scheduler(experiment: Experiment, row: dict[str, Any]) -> None:
    if experiment.scheduler is None:
        return
    if experiment.plateau_monitor is None:
        experiment.scheduler.step()
    elif not math.isnan(row.get(experiment.plateau_monitor, math.nan)):
        experiment.scheduler.step(row[experiment.plateau_monitor])
