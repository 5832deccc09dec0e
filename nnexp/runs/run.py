"""run(cfg): the one place that turns a config into objects, trains them and records the run.

Data flows one way: config -> data (and its spec) -> model (sizes from the spec) -> loss ->
optimiser (given the model's parameters) -> the loop -> the run folder.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import random
import subprocess
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import rich
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from torch import nn

import nnexp
from nnexp.cli.checks import check_config
from nnexp.data import DataBundle, DataSpec
from nnexp.diagnostics.baselines import baselines_for
from nnexp.diagnostics.monitor import Diagnostics
from nnexp.errors import ConfigError, OutputError, UserError
from nnexp.look.plots import plot_run
from nnexp.models.init import initialize
from nnexp.models.summary import format_parameter_counts, parameter_counts
from nnexp.paths import PACKAGE_DIR
from nnexp.runs.checkpoint import load_checkpoint, restore_training_state, training_state
from nnexp.runs.console import TrainingProgress, diagnostics_table, format_epoch_line, results_table
from nnexp.runs.folder import SAMPLES_FILE, VOCAB_FILE, RunFolder
from nnexp.runs.loggers import build_loggers, finish_loggers
from nnexp.train import lm_loop
from nnexp.train.augment import RandomAffine, augmented, build_augment
from nnexp.train.loop import evaluate, train_one_epoch
from nnexp.train.losses import LossFn, build_loss, resolve_loss_name
from nnexp.train.lr_finder import LrFinderOptions, find_lr, save_lr_find
from nnexp.train.metrics import better, metric_names
from nnexp.train.regularization import EarlyStopping, l1_penalty
from nnexp.train.safeguards import Diverged, DivergenceGuard, StopOnSignal, TrainingInterrupted

log = logging.getLogger("nnexp")

PARAMETERS_FILE = "parameters.json"  # per-layer parameter counts, in the run folder


@dataclass
class Experiment:
    """Everything a run trains with, built from the config."""

    data: DataBundle
    model: nn.Module
    loss_fn: LossFn
    optimizer: torch.optim.Optimizer
    scheduler: Any | None  # a torch LR scheduler
    plateau_monitor: str | None  # the column ReduceLROnPlateau steps on
    penalty: Any | None
    early_stopping: EarlyStopping | None
    device: torch.device
    augment: RandomAffine | None = None  # applied to the training batches only
    loggers: list[Any] = field(default_factory=list)  # tensorboard, mlflow: given each metrics row
    diagnostics: Diagnostics | None = None  # the learner checks: before training and on every epoch


@dataclass
class RunResult:
    run_dir: Path
    status: str
    metrics: dict[str, float]  # final values, e.g. test_accuracy
    summary: dict[str, Any]
    model: nn.Module | None = field(default=None, repr=False)


def run(cfg: DictConfig, run_dir: Path, console: Console | None = None, resume: bool = False) -> RunResult:
    """Train and evaluate the experiment `cfg` describes, writing every record into `run_dir`.

    With `resume`, continue from the checkpoint in `run_dir` instead of starting afresh.
    """
    console = console or rich.get_console()  # the CLI sets its width for logs and pipes
    folder = RunFolder(run_dir)
    checkpoint = load_checkpoint(folder.checkpoint_path) if resume else None
    started = time.time()
    summary: dict[str, Any] = {
        "status": "running",
        "seed": cfg.get("seed"),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "nnexp_version": nnexp.__version__,
        "code_version": _code_version(),
    }
    if checkpoint is not None:
        summary["resumed_from_epoch"] = checkpoint["epoch"]
    folder.write_summary(summary)
    experiment = None
    loggers: list[Any] = []
    try:
        check_config(cfg)  # again: a sweep job's own values are first seen here
        loggers = build_loggers(cfg, folder.path)
        experiment = build(cfg)
        experiment.loggers = loggers
        summary.update(_describe(experiment, cfg))
        _record_parameters(experiment.model, folder)
        initial_loss = start_diagnostics(experiment, cfg)
        if initial_loss is not None:
            summary["initial_loss"] = initial_loss
        _record_diagnostics(summary, experiment)
        if cfg.get("lr_find"):  # +lr_find=exponential: a learning-rate range test instead of training
            return _find_lr_and_record(cfg, experiment, folder, console, summary)
        with StopOnSignal() as stop:
            result = _train_and_record(cfg, experiment, folder, console, summary, stop, checkpoint)
    except BaseException as error:
        summary["status"] = _status_after(error)
        summary["error"] = str(error) or type(error).__name__
        _record_diagnostics(summary, experiment, getattr(error, "finding", None))
        summary.setdefault("epochs_completed", folder.epochs_recorded())
        if isinstance(error, TrainingInterrupted):
            summary["resume_with"] = f"nnexp resume={folder.path}"
        if not isinstance(error, (UserError, KeyboardInterrupt, TrainingInterrupted)):
            log.error("run failed:\n%s", traceback.format_exc())
        raise
    finally:
        summary["wall_time_s"] = round(time.time() - started, 3)
        with contextlib.suppress(OutputError):  # a full disk is already being reported
            folder.write_summary(summary)
        finish_loggers(loggers, summary)
        plot_run(folder.path)  # learning_curves.png
    return result


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
    train_epoch = _loop_for(experiment, trainer)[0]
    found = find_lr(experiment, options, batch_size, train_epoch, trainer.clip_grad_norm, cfg.seed)
    if found.stopped_early:
        log.info("lr range test stopped after %d steps: %s", len(found.lrs), found.stopped_early)
    save_lr_find(found, folder)
    summary.update(mode="lr_find", lr_find=found.to_summary(), epochs_completed=0, status="completed")
    console.print(found.advice(), soft_wrap=True)  # one line, however long, for logs and scripts
    log.info("run folder: %s", folder.path)
    return RunResult(folder.path, "completed", {}, summary, experiment.model)


def build(cfg: DictConfig) -> Experiment:
    device = resolve_device(cfg.device.type)
    if cfg.trainer.get("threads"):
        # Small recurrent nets on a busy CPU run faster on one thread than fighting for two.
        torch.set_num_threads(cfg.trainer.threads)
    _seed_everything(cfg.seed)
    data: DataBundle = _instantiate(cfg.data).to(device)
    regularization = cfg.get("regularization") or {}

    dropout = regularization["dropout"]["p"] if "dropout" in regularization else None
    model = build_model(cfg.model, data.spec, dropout).to(device)
    if cfg.trainer.get("compile", False):
        model.compile()  # in place: the module and its state_dict keys (so checkpoints) stay as they are

    optim_options = OmegaConf.to_container(cfg.optim, resolve=True)
    if "l2" in regularization:
        optim_options["weight_decay"] = regularization["l2"]["weight_decay"]
    optimizer = _instantiate(optim_options)(model.parameters())

    scheduler, plateau_monitor = None, None
    if cfg.scheduler:
        scheduler_options = OmegaConf.to_container(cfg.scheduler, resolve=True)
        plateau_monitor = scheduler_options.pop("monitor", None)
        if plateau_monitor is not None:
            plateau_monitor = _monitored_column(plateau_monitor, "scheduler.monitor", data)
        scheduler = _instantiate(scheduler_options)(optimizer)

    early_stopping = None
    if "early_stopping" in regularization:
        options = dict(regularization["early_stopping"])
        options["monitor"] = _monitored_column(
            options["monitor"], "regularization.early_stopping.monitor", data
        )
        early_stopping = EarlyStopping(**options)

    return Experiment(
        data=data,
        model=model,
        loss_fn=build_loss(cfg.loss.name, data.spec),
        optimizer=optimizer,
        scheduler=scheduler,
        plateau_monitor=plateau_monitor,
        penalty=l1_penalty(regularization["l1"]["strength"]) if "l1" in regularization else None,
        early_stopping=early_stopping,
        device=device,
        augment=build_augment(regularization["augment"], data.spec) if "augment" in regularization else None,
    )


def build_model(model_cfg: DictConfig, spec: DataSpec, dropout: float | None = None) -> nn.Module:
    """Instantiate `model_cfg` with the sizes from the data, then apply its weight initialisation."""
    options = OmegaConf.to_container(model_cfg, resolve=True)
    scheme, std = options.pop("init", "default"), options.pop("init_std", 0.01)
    if dropout is not None:
        options["dropout"] = dropout
    model = _instantiate(options, input_shape=tuple(spec.input_shape), num_outputs=spec.num_outputs)
    initialize(model, scheme, std)
    return model


def _instantiate(config: Any, **kwargs: Any) -> Any:
    """Hydra's instantiate, letting a user error raised by a builder through as itself."""
    try:
        return instantiate(config, _convert_="all", **kwargs)
    except InstantiationException as error:
        if isinstance(error.__cause__, UserError):
            raise error.__cause__ from None
        raise


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"device={name}, but this machine has no usable CUDA GPU: use device=cpu or device=auto"
        )
    return torch.device(name)


def _status_after(error: BaseException) -> str:
    if isinstance(error, (TrainingInterrupted, KeyboardInterrupt)):
        return "interrupted"
    return "diverged" if isinstance(error, Diverged) else "failed"


def _train_and_record(
    cfg: DictConfig,
    experiment: Experiment,
    folder: RunFolder,
    console: Console,
    summary: dict[str, Any],
    stop: StopOnSignal,
    checkpoint: dict | None = None,
) -> RunResult:
    if experiment.data.spec.task == "language_model":
        folder.write_json(VOCAB_FILE, experiment.data.vocab_record())  # so text can be generated later
    if checkpoint is None:
        start_epoch, history = 0, []
        folder.save_checkpoint(training_state(experiment, 0, history, cfg))  # resumable from the start
    else:
        start_epoch, history = restore_training_state(experiment, checkpoint)
        folder.keep_metrics_through(start_epoch)
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
    evaluate_split = _loop_for(experiment, cfg.trainer)[1]
    final = {
        name: evaluate_split(experiment.model, split, experiment.loss_fn)
        for name, split in experiment.data.splits().items()
    }
    if task == "language_model" and cfg.get("generation"):
        _sample(experiment, cfg.generation, folder, "final", cfg.seed)
    flat_final = {
        f"{split}_{name}": value for split, values in final.items() for name, value in values.items()
    }
    summary["metrics"] = {"final": flat_final, "best": _best_of(history)}
    summary["baselines"] = baselines_for(
        experiment.data, resolve_loss_name(cfg.loss.name, experiment.data.spec)
    )

    stop.check()
    folder.save_checkpoint(training_state(experiment, len(history), history, cfg))
    summary["checkpoint"] = folder.checkpoint_path.name
    summary["status"] = "completed"

    console.print(results_table(final, summary["baselines"]))
    console.print(diagnostics_table(summary["diagnostics"]))
    log.info("run folder: %s", folder.path)
    return RunResult(folder.path, "completed", flat_final, summary, experiment.model)


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

    After every epoch the whole training state is checkpointed, so a stopped run resumes exactly.
    """
    trainer = cfg.trainer
    data, task = experiment.data, experiment.data.spec.task
    batch_size = len(data.train) if trainer.batch_size == "full" else trainer.batch_size
    batches_per_epoch = steps_per_epoch(data, trainer)
    names = metric_names(task)
    history = list(history or [])
    train_epoch, evaluate_split = _loop_for(experiment, trainer)
    divergence = DivergenceGuard(experiment.optimizer, experiment.device)
    diagnostics = experiment.diagnostics
    generation = cfg.get("generation") if task == "language_model" else None
    # Augmentation changes only the batches the model trains on; evaluation sees the images as they are.
    train = data.train if experiment.augment is None else augmented(data.train, experiment.augment)

    with TrainingProgress(console, trainer.epochs, batches_per_epoch) as progress:

        def after_batch(loss: torch.Tensor) -> None:
            progress.on_batch(loss)
            divergence.after_batch(loss)
            if stop is not None:
                stop.check()

        for epoch in range(start_epoch + 1, trainer.epochs + 1):
            epoch_started = time.perf_counter()
            progress.start_epoch(epoch)
            divergence.start_epoch(epoch)
            # The data order depends only on (seed, epoch), so a run can be resumed exactly.
            order = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
            batches = itertools.islice(train.batches(batch_size, order), batches_per_epoch)
            train_metrics = train_epoch(
                experiment.model,
                batches,
                experiment.loss_fn,
                experiment.optimizer,
                penalty=experiment.penalty,
                clip_grad_norm=trainer.clip_grad_norm,
                on_batch=after_batch,
            )
            train_seconds = time.perf_counter() - epoch_started
            divergence.after_epoch(train_metrics["loss"])
            tokens = train_metrics.pop("tokens", None)  # a language model counts the tokens it trained on

            row: dict[str, Any] = {"epoch": epoch}
            row.update({f"train_{name}": value for name, value in train_metrics.items()})
            if data.val is not None:
                due = epoch % trainer.eval_every == 0 or epoch == trainer.epochs
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
            if diagnostics is not None:
                diagnostics.after_epoch(experiment.model, experiment.loss_fn, row)
            row["seconds"] = round(time.perf_counter() - epoch_started, 4)

            folder.append_metrics(row)
            for logger in experiment.loggers:
                logger.log_metrics(row, step=epoch)
            history.append(row)
            log.info(format_epoch_line(epoch, trainer.epochs, row))
            if generation and generation.every and epoch % generation.every == 0 and epoch < trainer.epochs:
                _sample(experiment, generation, folder, f"epoch {epoch}", cfg.seed * 100_003 + epoch)

            _step_scheduler(experiment, row)
            stopper = experiment.early_stopping
            stop_early = stopper is not None and stopper.update(epoch, row, experiment.model)
            folder.save_checkpoint(training_state(experiment, epoch, history, cfg))
            if diagnostics is not None and diagnostics.stuck and trainer.get("stop_when_stuck", False):
                log.info("stopping: the loss is stuck (trainer.stop_when_stuck=true)")
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
    return history


def steps_per_epoch(data: DataBundle, trainer: DictConfig) -> int:
    batch_size = len(data.train) if trainer.batch_size == "full" else trainer.batch_size
    batches = data.train.num_batches(batch_size)
    if trainer.max_batches_per_epoch is not None:
        batches = min(batches, trainer.max_batches_per_epoch)
    return batches


def _loop_for(experiment: Experiment, trainer: DictConfig) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """(train one epoch, evaluate a split) for the task; a language model looks after a hidden state."""
    task = experiment.data.spec.task
    autocast = autocast_for(trainer.get("precision", 32), experiment.device)
    if task == "language_model":
        # Evaluation reads a split in the training batch shape, so a carried state sees as much context;
        # a validation tail too short for one batch is refused now, not after the first epoch.
        if experiment.data.val is not None:
            experiment.data.val.num_batches(trainer.batch_size)
        return (
            partial(
                lm_loop.train_one_epoch, carry_state=experiment.data.train.carries_state, autocast=autocast
            ),
            partial(lm_loop.evaluate, batch_size=trainer.batch_size, autocast=autocast),
        )
    return (
        partial(train_one_epoch, task=task, autocast=autocast),
        partial(evaluate, task=task, batch_size=trainer.eval_batch_size, autocast=autocast),
    )


def autocast_for(
    precision: int | str, device: torch.device
) -> Callable[[], contextlib.AbstractContextManager]:
    """What the loops wrap each forward pass and loss in: bf16 autocast for `bf16`, nothing for 32."""
    if str(precision) == "32":
        return contextlib.nullcontext
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError(
            f"trainer.precision=bf16, but the GPU {torch.cuda.get_device_name(device)} has no bfloat16: "
            f"use trainer.precision=32"
        )
    return partial(torch.autocast, device.type, dtype=torch.bfloat16)


def _sample(experiment: Experiment, generation: DictConfig, folder: RunFolder, label: str, seed: int) -> None:
    """Continue the prefix with the model as it is now: shown in the console, appended to samples.txt."""
    text = lm_loop.generate(
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


def _step_scheduler(experiment: Experiment, row: dict[str, Any]) -> None:
    if experiment.scheduler is None:
        return
    if experiment.plateau_monitor is None:
        experiment.scheduler.step()
    elif not math.isnan(row.get(experiment.plateau_monitor, math.nan)):
        experiment.scheduler.step(row[experiment.plateau_monitor])


def _best_of(history: list[dict[str, Any]]) -> dict[str, float]:
    best: dict[str, float] = {}
    for row in history:
        for column, value in row.items():
            is_metric = column.startswith(("train_", "val_")) and column != "train_seconds"
            if is_metric and better(column, value, best.get(column, math.nan)):
                best[column] = value
    return best


def _monitored_column(monitor: str, key: str, data: DataBundle) -> str:
    """Check a monitored column exists for this data; with no validation split, watch training."""
    split, _, metric = monitor.partition("_")
    if metric not in metric_names(data.spec.task):
        choices = ", ".join(f"val_{name}" for name in metric_names(data.spec.task))
        raise ConfigError(f"{key}={monitor} is not a metric of {data.spec.task}: use one of {choices}")
    if split == "val" and data.val is None:
        return f"train_{metric}"
    return monitor


def _describe(experiment: Experiment, cfg: DictConfig) -> dict[str, Any]:
    spec = experiment.data.spec
    num_parameters = sum(p.numel() for p in experiment.model.parameters())
    model_name = type(experiment.model).__name__
    sizes = " / ".join(f"{name} {size:,}" for name, size in spec.sizes.items())
    outputs = {"classification": f"{spec.num_outputs} classes", "regression": "1 target"}.get(
        spec.task, f"vocabulary of {spec.num_outputs} tokens"
    )
    log.info("data: %s, %s, input %s, %s; %s", spec.name, spec.task, tuple(spec.input_shape), outputs, sizes)
    log.info("model: %s, %s parameters", model_name, f"{num_parameters:,}")
    optimizer = experiment.optimizer
    log.info(
        "optimizer: %s, lr %g; loss: %s; device: %s",
        type(optimizer).__name__,
        optimizer.param_groups[0]["lr"],
        resolve_loss_name(cfg.loss.name, spec),
        experiment.device,
    )
    return {
        "data": spec.to_dict(),
        "model": model_name,
        "num_parameters": num_parameters,
        "loss": resolve_loss_name(cfg.loss.name, spec),
        "optimizer": type(optimizer).__name__,
        "device": str(experiment.device),
    }


def start_diagnostics(experiment: Experiment, cfg: DictConfig) -> dict[str, Any] | None:
    """Attach the learner diagnostics and run the checks on the untrained model and the data.

    Returns the initial loss against the one an untrained model should score (None when disabled).
    """
    loss_name = resolve_loss_name(cfg.loss.name, experiment.data.spec)
    steps = steps_per_epoch(experiment.data, cfg.trainer)
    experiment.diagnostics = Diagnostics(experiment.data, loss_name, cfg.diagnostics, cfg.trainer, steps)
    return experiment.diagnostics.before_training(experiment.model, experiment.loss_fn)


def _record_diagnostics(summary: dict[str, Any], experiment: Experiment | None, refusal: Any = None) -> None:
    """summary["diagnostics"]: the findings so far, plus the one a refused setting carries."""
    found = experiment.diagnostics.to_list() if experiment and experiment.diagnostics else []
    if refusal is not None:
        found.append(refusal.to_dict())
    summary["diagnostics"] = found


def _record_parameters(model: nn.Module, folder: RunFolder) -> None:
    counts = parameter_counts(model)
    log.info(format_parameter_counts(counts))
    folder.write_json(PARAMETERS_FILE, counts)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def _code_version() -> str:
    """The git commit of the nnexp checkout (with +dirty), or the package version outside git."""
    try:
        commit = subprocess.run(
            ["git", "describe", "--always", "--dirty=+dirty"],
            cwd=PACKAGE_DIR,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return nnexp.__version__
    return commit.stdout.strip() if commit.returncode == 0 else nnexp.__version__
