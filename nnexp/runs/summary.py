"""summary.json's schema: `RunSummary`, one typed field for every key nnexp writes, filled in as the run's
story goes (runs/run.py calls `started`, `resumed`, `described`, ... in turn) and written whole each time.

`to_json()` is the file's dict: the fields that have been recorded, in the order a run records them, with
`schema_version` first. `from_json()` reads one back, including those older nnexp wrote (no version, keys
missing or since renamed): what it does not know is kept as it was, in `extra`, and written back unchanged.
Readers of run folders (look/, sweep/) read the plain dict; a key they use keeps its name and meaning.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass, field, fields
from typing import Any

# 1: the first summary.json to say its version; the keys and values are those nnexp wrote before it.
SCHEMA_VERSION = 1

_NOT_A_KEY = {"key": False}  # a field the run keeps for itself, never written


@dataclass
class RunSummary:
    """None is a key not recorded (yet, or ever for this kind of run), and is left out of the file."""

    # how the run ended: running, completed, failed, interrupted, requeued or diverged
    status: str | None = None
    seed: int | None = None  # written by every run that started, even when None
    started_at: str | None = None  # the first start, kept across resumes (%Y-%m-%dT%H:%M:%S%z)
    nnexp_version: str | None = None
    code_version: str | None = None  # the git commit of the checkout (+dirty), else the package version
    provenance: dict[str, Any] | None = None  # runs/provenance.py: software and hardware
    assigned: dict[str, Any] | None = None  # a parallel sweep job's own GPU and threads
    world_size: int | None = None  # the ranks of data-parallel training (trainer.devices x num_nodes)
    resumed_at: list[str] | None = None  # one time per resume
    resumed_from_epoch: int | None = None  # the checkpoint's epoch the latest resume started from
    # what train/build.py's describe() says the experiment is
    data: dict[str, Any] | None = None  # the data spec
    folds: int | None = None  # k-fold cross-validation (data.folds=K, data/folds.py): K
    fold: int | None = None  # and the fold 0..K-1 that validated this run
    model: str | None = None
    num_parameters: int | None = None
    loss: str | None = None
    optimizer: str | None = None
    device: str | None = None
    initial_loss: dict[str, Any] | None = None  # the untrained model's loss against the one it should have
    diagnostics: list[dict[str, Any]] | None = None  # the learner checks' findings
    error: str | None = None  # a run that did not complete: why, in one line
    exit_code: int | None = None  # a user's mistake: the exit code that says whose (errors.py)
    mode: str | None = None  # "lr_find": a learning-rate range test instead of training
    lr_find: dict[str, Any] | None = None  # the range test's suggestion
    epochs_completed: int | None = None
    train_time_s: float | None = None  # the epochs' own time, summed
    early_stopping: dict[str, Any] | None = None
    test_on: str | None = None  # trainer.test_on: the weights the final metrics are of, last or best
    best_epoch: int | None = None  # the best epoch by best_checkpoint's monitor: the weights in its file
    best_checkpoint: dict[str, Any] | None = None  # {"file", "monitor", "mode", "value", "epoch"}
    metrics: dict[str, Any] | None = None  # {"final": {...}, "best": {...}}
    baselines: list[dict[str, Any]] | None = None
    per_class: dict[str, Any] | None = None  # a classifier's precision and recall per class (the views)
    extra: dict[str, Any] = field(default_factory=dict, metadata=_NOT_A_KEY)  # keys it does not name
    checkpoint: str | None = None  # the checkpoint's file name, once the completed run has saved it
    resume_with: str | None = None  # a stopped run with a checkpoint: the command that continues it
    pictures_time_s: float | None = None  # the pictures drawn after the results were written (this session)
    wall_time_s: float | None = None  # every session's time together, resumes included
    earlier_wall_time_s: float = field(default=0.0, repr=False, metadata=_NOT_A_KEY)

    # --- the run's story, in order --------------------------------------------------------------------

    @classmethod
    def started(cls, **recorded: Any) -> RunSummary:
        """A run that starts: its seed, start time, versions, provenance, and what a sweep gave it."""
        return cls(status="running", **recorded)

    def resumed(self, previous: RunSummary, epoch: int, at: str) -> None:
        """Continues `previous`: its first start, its resumes and its time go on; the rest is this run's."""
        if previous.started_at is not None:
            self.started_at = previous.started_at
        self.resumed_at = [*(previous.resumed_at or []), at]
        self.resumed_from_epoch = epoch
        self.earlier_wall_time_s = previous.wall_time_s or 0.0

    def described(self, description: dict[str, Any]) -> None:
        """train/build.py's describe(): the data spec, model, parameters, loss, optimizer and device."""
        self._take(description)
        details = (self.data or {}).get("details", {})
        if "folds" in details:  # on top, where nnexp-report and a reader look for a k-fold run's fold
            self.folds, self.fold = details["folds"], details["fold"]

    def found(self, findings: list[dict[str, Any]]) -> None:
        self.diagnostics = findings

    def lr_found(self, suggestion: dict[str, Any]) -> None:
        self.mode, self.lr_find, self.epochs_completed, self.status = "lr_find", suggestion, 0, "completed"

    def trained(self, history: list[dict[str, Any]], early_stopping: dict[str, Any] | None) -> None:
        self.epochs_completed = len(history)
        self.train_time_s = round(sum(row["seconds"] for row in history), 3)
        self.early_stopping = early_stopping

    def kept_best(self, record: dict[str, Any]) -> None:
        """runs/best.py: the weights the final metrics are of, and the epoch checkpoint_best.pt holds."""
        self._take(record)

    def evaluated(
        self, final: dict[str, float], best: dict[str, float], baselines: list[dict[str, Any]]
    ) -> None:
        """`best`: the best of each metrics column over the epochs; only the evaluated ones are kept."""
        self.metrics = {"final": final, "best": evaluated_only(best)}
        self.baselines = baselines

    def drew(self, record: dict[str, Any]) -> None:
        """What the views record (per_class)."""
        self._take(record)

    def completed(self, checkpoint: str) -> None:
        self.checkpoint, self.status = checkpoint, "completed"

    def stopped(self, status: str, error: str, exit_code: int | None, epochs_recorded: int) -> None:
        """A run that did not complete: failed, interrupted, requeued or diverged, and why."""
        self.status, self.error = status, error
        if exit_code is not None:
            self.exit_code = exit_code
        if self.epochs_completed is None:  # trained epochs counted by the run, else those metrics.csv holds
            self.epochs_completed = epochs_recorded

    def interrupted(self, error: str) -> None:
        self.status, self.error = "interrupted", error

    def drew_pictures_in(self, seconds: float) -> None:
        self.pictures_time_s = round(seconds, 3)

    def ran_for(self, seconds: float) -> None:
        """This session's time, added to what earlier sessions of the run took."""
        self.wall_time_s = round(self.earlier_wall_time_s + seconds, 3)

    # --- the file ------------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        record: dict[str, Any] = {"schema_version": SCHEMA_VERSION}
        for key in _KEYS:
            if key == "checkpoint":  # the views' own keys, and those of other versions, sit beside per_class
                record.update(self.extra)
            value = getattr(self, key)
            if value is not None or (key == "seed" and self.started_at is not None):
                record[key] = value
        return record

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> RunSummary:
        """A summary.json's dict, from this nnexp or an older one; ValueError names a key of a wrong type."""
        summary = cls()
        version = record.get("schema_version")
        if version is not None and not _is(version, int):
            raise ValueError(f"summary.json's schema_version is {version!r}, not a whole number")
        summary._take({key: value for key, value in record.items() if key != "schema_version"})
        return summary

    def _take(self, record: dict[str, Any]) -> None:
        for key, value in record.items():
            if key not in _KEYS:
                self.extra[key] = value
            elif value is not None and not _is(value, _TYPES[key]):
                raise ValueError(f"summary.json's {key} is a {type(value).__name__}, not {_TYPES[key]}")
            else:
                setattr(self, key, value)


def _is(value: Any, kind: Any) -> bool:
    """isinstance for the schema's types: a float field takes a whole number too, a number never a bool."""
    if isinstance(kind, types.UnionType):
        return any(_is(value, option) for option in typing.get_args(kind))
    kind = typing.get_origin(kind) or kind
    if isinstance(value, bool):
        return kind is bool
    return isinstance(value, (int, float) if kind is float else kind)


# metrics["best"]'s columns: values a model was scored on after an epoch (the validation split, and the
# training split with trainer.eval_train). Never train_*: the running mean over an epoch's batches mixes
# every batch's weights and dropout, so its "best" is no model's (docs/train-numbers.md).
EVALUATED_COLUMNS = ("train_eval_", "val_", "test_")


def evaluated_only(best: dict[str, float]) -> dict[str, float]:
    """The best values over the epochs of the evaluated columns only."""
    return {column: value for column, value in best.items() if column.startswith(EVALUATED_COLUMNS)}


_TYPES = {
    name: kind
    for name, kind in typing.get_type_hints(RunSummary).items()
    if next(f for f in fields(RunSummary) if f.name == name).metadata.get("key", True)
}
_KEYS = tuple(_TYPES)

__all__ = ["EVALUATED_COLUMNS", "SCHEMA_VERSION", "RunSummary", "evaluated_only"]
