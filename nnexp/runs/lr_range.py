"""`+lr_find=exponential`: a learning-rate range test instead of training, recorded in the run folder."""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig
from rich.console import Console

from nnexp.runs.folder import RunFolder
from nnexp.runs.result import RunResult
from nnexp.runs.summary import RunSummary
from nnexp.train.build import Experiment, loops_for
from nnexp.train.lr_finder import CSV_FILE, PLOT_FILE, LrFinderOptions, LrFinderResult, find_lr

log = logging.getLogger("nnexp")


def find_lr_and_record(
    cfg: DictConfig,
    experiment: Experiment,
    folder: RunFolder,
    console: Console,
    summary: RunSummary,
    plot: Callable[[LrFinderResult, Path], Any],
    check_stop: Callable[[], None] | None = None,
) -> RunResult:
    """The lr range test instead of training: lr_find.csv, lr_find.png and the suggestion in the summary.

    No checkpoint: a model trained at every lr in turn is no model to keep or resume. The sweep is
    short, so a stop signal ends it at once with nothing to resume; `check_stop` is also called after
    every step, for a signal whose exception a library swallowed (nnexp.stop remembers it).
    """
    options = LrFinderOptions.from_config(cfg.lr_find)
    trainer = cfg.trainer
    batch_size = len(experiment.data.train) if trainer.batch_size == "full" else trainer.batch_size
    log.info("lr range test: %d steps, lr %g to %g", options.num_steps, options.start_lr, options.end_lr)
    train_epoch = loops_for(experiment, trainer)[0]
    found = find_lr(
        experiment, options, batch_size, train_epoch, trainer.clip_grad_norm, cfg.seed, check_stop
    )
    if found.stopped_early:
        log.info("lr range test stopped after %d steps: %s", len(found.lrs), found.stopped_early)
    _save_lr_find(found, folder, plot)
    summary.lr_found(found.to_summary())
    console.print(found.advice(), soft_wrap=True)  # one line, however long, for logs and scripts
    log.info("run folder: %s", folder.path)
    return RunResult(folder.path, "completed", {}, summary.to_json(), experiment.model)


def _save_lr_find(
    result: LrFinderResult, folder: RunFolder, plot: Callable[[LrFinderResult, Path], Any]
) -> None:
    """lr_find.csv (step, lr, loss, smoothed_loss) and lr_find.png in the run folder."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["step", "lr", "loss", "smoothed_loss"])
    rows = zip(result.lrs, result.losses, result.smoothed_losses, strict=True)
    writer.writerows((step, *row) for step, row in enumerate(rows))
    folder.append_line(CSV_FILE, text.getvalue())  # one write of the whole table into the new folder
    try:
        plot(result, folder.path / PLOT_FILE)
    except Exception as error:  # the numbers are in the csv; the picture is a bonus
        log.warning("could not plot the learning-rate sweep: %s", error)


__all__ = ["find_lr_and_record"]
