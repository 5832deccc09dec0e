"""The files of one run: metrics.csv (a row per logged epoch), summary.json, checkpoint.pt, and the lock
that keeps a second process from writing them while one does."""

from __future__ import annotations

import contextlib
import csv
import fcntl
import json
import math
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from nnexp.errors import OutputError, UserError
from nnexp.paths import PACKAGE_DIR

METRICS_FILE = "metrics.csv"
SUMMARY_FILE = "summary.json"
CHECKPOINT_FILE = "checkpoint.pt"
VOCAB_FILE = "vocab.json"  # language models: the tokenizer and every token, in id order
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


def _lock_or_refuse(path: Path) -> int:
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError as error:
        raise OutputError(f"cannot open {path}: {error.strerror}") from None
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        raise RunFolderBusy(
            f"{path} is being written by another nnexp process: wait for it to end, or stop it "
            f"and then resume"
        ) from None
    return descriptor


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
        with _writing(self.metrics_path):
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
            writer.writerow({key: _csv_value(row.get(key)) for key in self._metric_columns})
            handle.flush()

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
        with _writing(self.metrics_path), self.metrics_path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            writer.writerows({key: _csv_value(row.get(key)) for key in columns} for row in history)
        self._metric_columns, self._metrics_started = columns, True

    def write_json(self, name: str, content: dict[str, Any]) -> None:
        text = json.dumps(_json_safe(content), indent=2) + "\n"
        self._replace_atomically(self.path / name, text.encode())

    def write_text(self, name: str | Path, text: str) -> None:
        self._replace_atomically(self.path / name, text.encode())

    def append_line(self, name: str, line: str) -> None:
        with _writing(self.path / name), (self.path / name).open("a", encoding="utf-8") as handle:
            handle.write(line.rstrip("\n") + "\n")

    def write_summary(self, summary: dict[str, Any]) -> None:
        self.write_json(SUMMARY_FILE, summary)

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        """Written beside the old one and swapped in, so a crash mid-save keeps the previous file."""
        import torch  # here, so that what only looks at run folders (preflight, reports) needs no torch

        temporary = self.checkpoint_path.with_name(f".{CHECKPOINT_FILE}.tmp")
        with _writing(self.checkpoint_path):
            try:
                with temporary.open("wb") as handle:
                    torch.save(state, handle)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(temporary, self.checkpoint_path)
            finally:
                temporary.unlink(missing_ok=True)

    def _replace_atomically(self, target: Path, content: bytes) -> None:
        temporary = target.with_name(f".{target.name}.tmp")
        with _writing(target):
            try:
                temporary.write_bytes(content)
                os.replace(temporary, target)
            finally:
                temporary.unlink(missing_ok=True)


@contextmanager
def _writing(path: Path) -> Iterator[None]:
    """Turn a failed write into one line that names the file; atomic writes keep the old file."""
    try:
        yield
    except (OSError, RuntimeError) as error:  # torch.save reports a failed write as RuntimeError
        reason = getattr(error, "strerror", None) or str(error).splitlines()[0]
        raise OutputError(
            f"cannot write {path}: {reason}; free some space or choose another output folder"
        ) from None


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
