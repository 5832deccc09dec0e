"""Which epochs' rows reach metrics.csv and the loggers (`trainer.log_every_n_epochs`, default 1: all).

With N > 1: every Nth epoch, the last epoch, and the epoch a run stopped after, however it stopped
(early stopping, a stuck loss, a stop signal; a divergence, a stop or a crash during the next epoch).
A full-batch digits epoch takes a few milliseconds, and a CSV row, a TensorBoard event and an MLflow
batch each epoch are then a visible share of it; 2,000 rows are more than a curve needs.

Only what is written changes: every epoch's row still feeds early stopping, the schedules, the
diagnostics, the summary's best values and the checkpoint's history. A resume rewrites metrics.csv
from that history by the same rule, so a run stopped and resumed has the rows an uninterrupted run
with its config has (the row of the epoch it stopped after goes, unless it is due anyway).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from omegaconf import DictConfig
from torch import nn

from nnexp.runs.folder import RunFolder

log = logging.getLogger("nnexp")


def is_due(epoch: int, every: int, epochs: int) -> bool:
    """Whether an epoch's row is written in a run that goes on past it: every Nth, and the last."""
    return epoch % every == 0 or epoch == epochs


def restore_metrics(folder: RunFolder, history: list[dict[str, Any]], trainer: DictConfig) -> None:
    """On resume: metrics.csv becomes the rows of `history` an uninterrupted run would have written.

    The header is the first epoch's columns, as in a run that was never stopped (the diagnostics
    probe adds columns to some epochs only, and the first epoch is always probed).
    """
    every, epochs = trainer.get("log_every_n_epochs", 1), trainer.epochs
    rows = [row for row in history if is_due(row["epoch"], every, epochs)]
    columns = list(history[0]) if history else None
    if columns and trainer.get("eval_train", False):
        columns = with_train_eval(columns)
    folder.restore_metrics(rows, columns=columns)


def with_train_eval(columns: list[str]) -> list[str]:
    """The header with train_eval_* beside train_*: a run resumed with trainer.eval_train=true after
    epochs without it keeps the resumed epochs' evaluations (blank in the epochs before)."""
    if any(column.startswith("train_eval_") for column in columns):
        return columns
    running = [column for column in columns if column.startswith("train_") and column != "train_seconds"]
    at = columns.index(running[-1]) + 1 if running else 1
    evaluated = [f"train_eval_{column.removeprefix('train_')}" for column in running]
    return [*columns[:at], *evaluated, *columns[at:]]


class EpochLog:
    """metrics.csv and the loggers, fed on the epoch cadence; the rows in between are held, not lost,
    until the next one is written or the run stops."""

    def __init__(self, folder: RunFolder, loggers: list[Any], model: nn.Module, trainer: DictConfig) -> None:
        self.folder, self.loggers, self.model = folder, loggers, model
        self.every: int = trainer.get("log_every_n_epochs", 1)
        self.epochs: int = trainer.epochs
        self.held: dict[str, Any] | None = None  # the latest epoch's row, when it was not due

    def add(self, row: dict[str, Any], stopping: bool = False) -> None:
        """Write the epoch's row if it is due, or if the run stops after this epoch; else hold it."""
        self.folder.name_metric_columns(list(row))  # the first epoch's, whichever row is written first
        if stopping or is_due(row["epoch"], self.every, self.epochs):
            self.held = None
            self._write(row, with_model=True)
        else:
            self.held = row

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """However the epoch loop ends, the last finished epoch's row is written: a divergence, a stop
        or a crash in the epoch after it leaves the record ending where training did."""
        try:
            yield
        finally:
            if self.held is not None:
                row, self.held = self.held, None
                try:  # the model has moved on since that epoch: no weight histograms for it
                    self._write(row, with_model=False)
                except Exception as error:  # what ended the loop is the error to report
                    log.warning("could not record epoch %s: %s", row["epoch"], error)

    def _write(self, row: dict[str, Any], with_model: bool) -> None:
        self.folder.append_metrics(row)
        for logger in self.loggers:
            logger.log_metrics(row, step=row["epoch"])
            if with_model and hasattr(logger, "log_model"):  # tensorboard: weights and gradients
                logger.log_model(self.model, step=row["epoch"])
