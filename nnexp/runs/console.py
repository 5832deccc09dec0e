"""What the user watches: a progress bar while training and a table of results at the end."""

from __future__ import annotations

import contextlib
import io
import logging
import math
import os
import time
from typing import IO, TYPE_CHECKING, Any

from rich.console import Console, Group
from rich.logging import RichHandler
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    import torch

# The bar is redrawn from the training loop a few times a second, never from a thread of its own: on two
# cores rich's refresh thread (10 redraws a second) took 5-8% of an MLP epoch from the training.
REFRESH_S = 0.25


class ConsoleLogHandler(RichHandler):
    """The console's log handler: rich's layout on a terminal; one plain line per record elsewhere.

    In a pipe or a file rich would wrap long records and pad every line to the console's width.
    """

    def emit(self, record: logging.LogRecord) -> None:
        if self.console.is_terminal:
            super().emit(record)
            return
        try:
            message = self.format(record)
            self.console.print(message, soft_wrap=True, markup=False, highlight=False, emoji=False)
        except Exception:  # logging's contract: a handler reports its own failure and carries on
            self.handleError(record)


class PlainLines(io.TextIOBase):
    """A text stream that passes each line on without its trailing spaces (rich pads tables' titles).

    When its reader goes away (`nnexp | head`), the rest is dropped and the run goes on: what the
    console would have said is in the run's nnexp.log, and a closed pipe is no reason to lose a run.
    With `beside_a_log` (a run's console), a stream that refuses more for another reason (a full disk,
    `> /dev/full`) is said once on stderr and then dropped too; a tool whose output is its product
    (nnexp-report) gets the error.
    """

    def __init__(self, stream: IO[str], beside_a_log: bool = False) -> None:
        self.stream = stream
        self.beside_a_log = beside_a_log
        self._pending = ""

    def write(self, text: str) -> int:
        *lines, self._pending = (self._pending + text).split("\n")
        if lines:
            self._guarded(self.stream.write, "".join(line.rstrip(" ") + "\n" for line in lines))
        return len(text)

    def flush(self) -> None:
        if self._pending:  # a line cut short by a flush goes out as it is: more of it may follow
            self._guarded(self.stream.write, self._pending)
            self._pending = ""
        self._guarded(self.stream.flush)

    def _guarded(self, action: Any, *args: Any) -> None:
        try:
            action(*args)
            self.stream.flush()
        except BrokenPipeError:
            self._drop_the_rest()
        except OSError as error:
            if not self.beside_a_log:
                raise
            self._drop_the_rest()
            with contextlib.suppress(OSError, ValueError):  # stderr may be refused as well
                os.write(2, f"nnexp: standard output refused more ({error.strerror}): the run goes on, "
                         "and what it says is in nnexp.log in its folder\n".encode())  # fmt: skip

    def _drop_the_rest(self) -> None:
        # Point the descriptor at /dev/null, so the interpreter's last flush at exit fails no more.
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), self.stream.fileno())

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self.stream.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.stream, "encoding", "utf-8")


class TrainingProgress:
    """A rich bar over all batches of the run (so its ETA covers the run), labelled with epoch and loss."""

    def __init__(self, console: Console, epochs: int, batches_per_epoch: int) -> None:
        self.epochs = epochs
        self.batches_per_epoch = batches_per_epoch
        self.progress = Progress(
            TextColumn("epoch {task.fields[epoch]}/{task.fields[epochs]}"),
            BarColumn(),
            TextColumn("batch {task.fields[batch]}/{task.fields[batches]}"),
            TextColumn("loss {task.fields[loss]}"),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            transient=True,
            auto_refresh=False,
            disable=not console.is_terminal,
        )
        self.task = self.progress.add_task(
            "train",
            total=epochs * batches_per_epoch,
            epoch=0,
            epochs=epochs,
            batch=0,
            batches=batches_per_epoch,
            loss="-",
        )
        self._batch = 0
        self._epoch_start = 0  # batches of the run before this epoch
        self._last_refresh = 0.0

    def __enter__(self) -> TrainingProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.progress.stop()

    def start_epoch(self, epoch: int) -> None:
        self._batch = 0
        self._epoch_start = (epoch - 1) * self.batches_per_epoch
        self.progress.update(self.task, epoch=epoch, batch=0, completed=self._epoch_start)
        self.progress.refresh()

    def on_batch(self, loss: torch.Tensor) -> None:
        """Per batch only a counter; the bar (and the loss, which waits for the device) now and then."""
        self._batch += 1
        if self.progress.disable:
            return
        now = time.monotonic()
        if now - self._last_refresh < REFRESH_S:
            return
        self._last_refresh = now
        completed = self._epoch_start + self._batch
        self.progress.update(self.task, completed=completed, batch=self._batch, loss=f"{loss.item():.4f}")
        self.progress.refresh()


def format_epoch_line(epoch: int, epochs: int, row: dict[str, Any]) -> str:
    """`epoch 3/20 | train loss 0.41 accuracy 0.88 | val loss 0.45 accuracy 0.86 | lr 0.001 | 0.03 s`"""
    parts = [f"epoch {epoch}/{epochs}"]
    for split in ("train", "val"):
        shown = [
            f"{key.removeprefix(split + '_')} {_format(value)}"
            for key, value in row.items()
            if key.startswith(split + "_") and key != "train_seconds" and not _is_nan(value)
        ]
        if shown:
            parts.append(f"{split} " + " ".join(shown))
    parts.append(f"lr {row['lr']:.3g}")
    if "tokens_per_s" in row:
        parts.append(f"{row['tokens_per_s']:,} tokens/s")
    parts.append(f"{row['seconds']:.2f} s")
    return " | ".join(parts)


def results_table(
    final: dict[str, dict[str, float]], baselines: list[dict[str, Any]] | None = None, note: str | None = None
) -> Table | Group:
    """Rows: metrics; columns: splits. Under the model's rows, a dim row per metric of each baseline.

    `note`, when given, is printed under the table (e.g. that there is no test split)."""
    splits = list(final)
    metrics = list(dict.fromkeys(name for values in final.values() for name in values))
    table = Table(title="results", title_justify="left")
    table.add_column("metric")
    for split in splits:
        table.add_column(split, justify="right")
    for metric in metrics:
        table.add_row(metric, *(_format(final[split].get(metric, math.nan)) for split in splits))
    if baselines:
        table.add_section()
    for baseline in baselines or []:
        for metric in metrics:
            values = [baseline.get(f"{split}_{metric}", math.nan) for split in splits]
            if not all(_is_nan(value) for value in values):
                table.add_row(f"{metric} of {baseline['name']}", *map(_format, values), style="dim")
    # A line of its own under the table, not a caption: a caption wraps to the table's narrow width.
    return table if note is None else Group(table, Text(note, style="bold"))


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _format(value: Any) -> str:
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def diagnostics_table(findings: list[dict[str, Any]]) -> Table | str:
    """The learner diagnostics of the run: what was found, when, and what to try."""
    if not findings:
        return "diagnostics: none of the checks fired"
    table = Table(title="diagnostics", title_justify="left", show_lines=True)
    for column in ("code", "when", "what was seen", "try"):
        table.add_column(column, overflow="fold")
    for finding in findings:
        when = "before training" if finding["epoch"] is None else f"epoch {finding['epoch']}"
        if finding.get("resolved_at") is not None:
            when += f"; resolved at epoch {finding['resolved_at']}"
        code = finding["code"] + (" (expected)" if finding.get("expected") else "")
        table.add_row(code, when, finding["message"], finding["hint"], style="yellow")
    return table
