"""steps.csv: the training loss and learning rate of every Nth optimiser step (`trainer.log_every_n_steps`).

Off by default. When on, a step only keeps its loss tensor (no wait for the device); the rows are
written at the end of each epoch, before its checkpoint, and a resume drops the rows of any epoch
after the checkpoint it continues from, so no step is written twice.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import torch

from nnexp.atomic import write_atomically

STEPS_FILE = "steps.csv"
COLUMNS = ("step", "epoch", "loss", "lr")


class StepLog:
    def __init__(self, run_dir: Path, every: int, start_epoch: int, steps_per_epoch: int) -> None:
        self.path = Path(run_dir) / STEPS_FILE
        self.every = every
        self.step = start_epoch * steps_per_epoch  # optimiser steps taken before this process
        self.pending: list[tuple[int, int, torch.Tensor, float]] = []
        kept = _rows_up_to(self.path, start_epoch)
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(COLUMNS)
        writer.writerows(kept)
        write_atomically(self.path, text.getvalue())  # a full disk keeps the rows written before

    @classmethod
    def open(cls, run_dir: Path, every: int | None, start_epoch: int, steps_per_epoch: int) -> StepLog | None:
        """The log, or None when `trainer.log_every_n_steps` is null (off)."""
        return None if not every else cls(run_dir, every, start_epoch, steps_per_epoch)

    def after_step(self, loss: torch.Tensor, epoch: int, optimizer: torch.optim.Optimizer) -> None:
        self.step += 1
        if self.step % self.every == 0:
            self.pending.append((self.step, epoch, loss.detach(), optimizer.param_groups[0]["lr"]))

    def end_epoch(self) -> None:
        """Append the epoch's rows (one wait for the device for all of them)."""
        if not self.pending:
            return
        losses = torch.stack([loss.float() for _, _, loss, _ in self.pending]).cpu().tolist()
        with open(self.path, "a", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            for (step, epoch, _, lr), loss in zip(self.pending, losses, strict=True):
                writer.writerow((step, epoch, f"{loss:.6g}", lr))
        self.pending = []


def _rows_up_to(path: Path, epoch: int) -> list[list[Any]]:
    """The rows of steps.csv from epochs up to `epoch` (a resume's starting point); none if unreadable."""
    if epoch == 0 or not path.is_file():
        return []
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            return [row for row in csv.reader(handle) if row and row[1].isdigit() and int(row[1]) <= epoch]
    except (OSError, csv.Error, IndexError):
        return []
