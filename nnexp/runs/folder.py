"""The files of one run: metrics.csv (a row per logged epoch), summary.json, checkpoint.pt, and the lock
that keeps a second process from writing them while one does."""

from __future__ import annotations

import contextlib
import csv
import errno
import fcntl
import io
import json
import logging
import math
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nnexp.atomic import write_atomically
from nnexp.errors import OutputError, UserError, command_line, environment_fault
from nnexp.forked import close_in_children, keep_in_children
from nnexp.paths import PACKAGE_DIR

if TYPE_CHECKING:
    from nnexp.runs.summary import RunSummary

METRICS_FILE = "metrics.csv"
SUMMARY_FILE = "summary.json"
CHECKPOINT_FILE = "checkpoint.pt"
VOCAB_FILE = "vocab.json"  # language models: the tokenizer and every token, in id order
PAGE_FILE = "report.html"  # the run's page (look/page.py), written last however the run ends
SAMPLES_FILE = "samples.txt"  # language models: generated text, a line per sample


class RunFolderBusy(UserError):
    """Another process is writing this run folder (training it, or resuming it)."""


_HELD: dict[Path, int] = {}  # folders this process holds for its whole life -> the locked descriptor


def hold_for_this_process(path: Path) -> None:
    """Lock `path` (an existing folder) until this process ends, or raise RunFolderBusy.

    For a folder named outright on the command line: held before Hydra writes into it, so a second
    process naming it at the same moment is refused before it can write anything there.
    """
    folder = Path(path).absolute()
    if folder not in _HELD:
        _HELD[folder] = _lock_or_refuse(folder)


def let_go(path: Path) -> None:
    """Release a folder `hold_for_this_process` holds: `nnexp.run` once its run has returned, since the
    process (a notebook's) goes on, and a `nnexp resume=` of that folder must not be refused."""
    descriptor = _HELD.pop(Path(path).absolute(), None)
    if descriptor is not None and descriptor >= 0:  # -1: a rank's folder, held by rank 0's process
        keep_in_children(descriptor)
        os.close(descriptor)


def _lock_or_refuse(path: Path) -> int:
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError as error:
        raise environment_fault(error, path) or OutputError(f"cannot open {path}: {error.strerror}") from None
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        raise RunFolderBusy(
            f"{path} is being written by another nnexp process: wait for it to end, or stop it "
            f"and then resume"
        ) from None
    close_in_children(descriptor)  # a child forked to draw or fit (nnexp/forked.py) must not hold it on
    return descriptor


def refuse_unwritable(path: Path, then: str) -> None:
    """Refuse a run folder this process cannot write (read-only, someone else's), before anything in it
    changes: one line, exit code 4. The probe is an unnamed file (O_TMPFILE): nothing appears or stays."""
    folder = Path(path)
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:  # named by the folder, not by the probe
        error = OSError(error.errno, error.strerror, str(folder))
        raise environment_fault(error, folder, then) or OutputError(f"{error}: {then}") from None
    for name in (METRICS_FILE, "nnexp.log", "steps.csv"):  # the files written in place, not replaced
        if (folder / name).exists() and not os.access(folder / name, os.W_OK):
            error = PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(folder / name))
            raise environment_fault(error, folder, then) or OutputError(str(error))


def holds_a_run(path: Path) -> bool:
    """Whether `path` is a run folder already (Hydra's record of a config, a summary or a checkpoint)."""
    return any((Path(path) / name).exists() for name in (".hydra", SUMMARY_FILE, CHECKPOINT_FILE))


def run_above(path: Path) -> Path | None:
    """The run folder that `path` would lie inside, if any (nnexp never writes into a run)."""
    return next((parent for parent in Path(path).absolute().parents if holds_a_run(parent)), None)


def run_at_or_below(path: Path) -> Path | None:
    """`path` itself if it holds a run, else the first run folder anywhere below it, else None."""
    path = Path(path)
    if holds_a_run(path):
        return path
    if not path.is_dir():
        return None
    for name in (SUMMARY_FILE, ".hydra", CHECKPOINT_FILE):
        found = next(path.rglob(name), None)
        if found is not None:
            return found.parent
    return None


class RunFolder:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self._metric_columns: list[str] | None = None
        self._metrics_started = False  # metrics.csv has its header, written by this process
        self._metrics_writer: tuple[Any, csv.DictWriter] | None = None  # (open file, writer) while training

    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS_FILE

    @property
    def summary_path(self) -> Path:
        return self.path / SUMMARY_FILE

    @property
    def checkpoint_path(self) -> Path:
        return self.path / CHECKPOINT_FILE

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the folder for this process, or refuse at once: two writers would interleave its rows.

        The lock is on the folder itself (flock on its descriptor), so taking it writes nothing, and
        the kernel releases it when the process ends, however it ends. A folder this process holds
        already (one named outright, held from before Hydra wrote into it) is simply used.
        """
        if self.path.absolute() in _HELD:
            yield
            return
        descriptor = _lock_or_refuse(self.path)
        try:
            yield
        finally:
            keep_in_children(descriptor)
            os.close(descriptor)  # releases the lock

    def read_summary(self) -> dict[str, Any] | None:
        """The summary as last written, or None when there is none or it cannot be read."""
        try:
            summary = json.loads(self.summary_path.read_text())
        except (OSError, ValueError):
            return None
        return summary if isinstance(summary, dict) else None

    def name_metric_columns(self, columns: list[str]) -> None:
        """The columns of a metrics.csv not started yet (else the first row written names them)."""
        if self._metric_columns is None:
            self._metric_columns = columns

    def append_metrics(self, row: dict[str, Any]) -> None:
        """Append one epoch; flushed at once so an interrupted run keeps every finished epoch.

        The file stays open between rows: opening it per row cost a tenth of a tiny (fish) epoch.
        """
        with _writing(self.metrics_path, self.then()):
            if self._metrics_writer is None:
                new_file = not self._metrics_started
                if self._metric_columns is None:
                    self._metric_columns = list(row)
                handle = self.metrics_path.open("w" if new_file else "a", newline="")
                writer = csv.DictWriter(handle, fieldnames=self._metric_columns)
                if new_file:
                    writer.writeheader()
                self._metrics_started = True
                self._metrics_writer = (handle, writer)
            handle, writer = self._metrics_writer
            written = handle.tell()  # the rows before this one stay whole, whatever happens to it
            try:
                writer.writerow({key: _csv_value(row.get(key)) for key in self._metric_columns})
                handle.flush()
            except BaseException:
                self._metrics_writer = None
                with contextlib.suppress(OSError):
                    handle.close()  # its buffer cannot be written either; the descriptor closes all the same
                with contextlib.suppress(OSError):
                    os.truncate(self.metrics_path, written)  # no half row after the last whole one
                raise

    @contextmanager
    def writing_metrics(self) -> Iterator[None]:
        """metrics.csv stays open for appends inside this block, and is closed however it ends."""
        try:
            yield
        finally:
            self.close_metrics()

    def close_metrics(self) -> None:
        """Close metrics.csv (it stays open between rows while a run trains)."""
        if self._metrics_writer is not None:
            self._metrics_writer[0].close()
            self._metrics_writer = None

    def epochs_recorded(self) -> int:
        """The epoch of metrics.csv's last row (with trainer.log_every_n_epochs > 1, rows skip epochs)."""
        if not self.metrics_path.is_file():
            return 0
        last = 0
        with self.metrics_path.open(newline="") as handle:
            for row in csv.DictReader(handle):
                with contextlib.suppress(TypeError, ValueError):
                    last = int(row.get("epoch"))
        return last

    def restore_metrics(self, history: list[dict[str, Any]], columns: list[str] | None = None) -> None:
        """On resume: metrics.csv becomes the checkpoint's epochs, written as they were first written.

        Rows after the checkpoint (an epoch that ended after its last save) go, so none is repeated; a
        metrics.csv deleted or damaged since is rebuilt, so the resumed run's record is whole. `columns`
        (default: the first row's) is the header, written even when no row is.
        """
        self.close_metrics()
        self._metric_columns, self._metrics_started = None, False
        columns = columns or (list(history[0]) if history else None)
        if not columns:
            self.metrics_path.unlink(missing_ok=True)
            return
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=columns)
        writer.writeheader()
        writer.writerows({key: _csv_value(row.get(key)) for key in columns} for row in history)
        with _writing(self.metrics_path, self.then()):  # the old file stays whole until the new one is
            write_atomically(self.metrics_path, text.getvalue())
        self._metric_columns, self._metrics_started = columns, True

    def write_json(self, name: str, content: dict[str, Any]) -> None:
        text = json.dumps(_json_safe(content), indent=2) + "\n"
        self._replace_atomically(self.path / name, text.encode())

    def write_text(self, name: str | Path, text: str) -> None:
        self._replace_atomically(self.path / name, text.encode())

    def append_line(self, name: str, line: str) -> None:
        path = self.path / name
        with _writing(path, self.then()), path.open("a", encoding="utf-8") as handle:
            handle.write(line.rstrip("\n") + "\n")

    def write_summary(self, summary: RunSummary | dict[str, Any]) -> None:
        """summary.json, whole: a RunSummary as its to_json() (a plain dict is written as it is)."""
        self.write_json(SUMMARY_FILE, summary.to_json() if not isinstance(summary, dict) else summary)

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        """Written beside the old one and swapped in, so a crash mid-save keeps the previous file."""
        import torch  # here, so that what only looks at run folders (preflight, reports) needs no torch

        then = self.then()  # before the write: a first checkpoint that fails leaves nothing to resume
        with _writing(self.checkpoint_path, then):
            write_atomically(self.checkpoint_path, lambda handle: torch.save(state, handle))

    def _replace_atomically(self, target: Path, content: bytes) -> None:
        with _writing(target, self.then()):
            write_atomically(target, content)

    def then(self) -> str:
        """What to do once the machine lets this folder be written again."""
        if self.checkpoint_path.is_file():
            return f"resume with: {command_line('nnexp', f'resume={self.path}')}"
        return "run it again"


class RunLogFile(logging.FileHandler):
    """nnexp.log. A record that cannot be written (a full disk, a folder made read-only) ends the file
    quietly instead of printing logging's `--- Logging error ---` traceback for every record: the write
    that matters (a checkpoint, metrics.csv) reports the fault in one line."""

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 (logging's name)
        if isinstance(sys.exc_info()[1], OSError):
            self.emit = lambda record: None  # type: ignore[method-assign]
            self.flush = lambda: None  # type: ignore[method-assign]
            return
        super().handleError(record)


@contextmanager
def _writing(path: Path, then: str = "run it again") -> Iterator[None]:
    """Turn a failed write into one line that names the file (exit code 4); atomic writes keep the old
    file. `then`: what to do once the machine is fixed."""
    try:
        yield
    except OSError as error:
        fault = environment_fault(error, path, then)
        if fault is not None:
            raise fault from None
        reason = error.strerror or error
        raise OutputError(f"cannot write {error.filename or path}: {reason}; {then}") from None


def _csv_value(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return value


def _json_safe(value: Any) -> Any:
    """JSON has no NaN or infinity: write them as null (NaN) or strings, never invalid JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else str(value)
    if isinstance(value, dict):
        return {str(key): _json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    return value


def nnexp_version() -> str:
    """The installed nnexp's version (pyproject.toml is its one source)."""
    try:
        return version("nnexp")
    except PackageNotFoundError:  # imported from a checkout that was never installed
        return "0+unknown"


def code_version() -> str:
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
        return nnexp_version()
    return commit.stdout.strip() if commit.returncode == 0 else nnexp_version()
