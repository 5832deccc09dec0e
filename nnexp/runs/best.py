"""checkpoint_best.pt beside checkpoint.pt, and `trainer.test_on=best`: the final metrics of the best epoch.

train/best.py watches the monitored column and keeps the best weights in memory. They are written here
at checkpoint.pt's cadence (just before it, only when a better epoch came since the last write), so the
two files always agree on the best epoch: checkpoint.pt records which epoch that is, and a resume takes
its weights back from checkpoint_best.pt. The file is a checkpoint as load_checkpoint reads it (weights,
epoch, the history up to it, config, data spec), without the optimiser: it is for testing and predicting,
not for resuming.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import torch
from omegaconf import DictConfig

from nnexp.atomic import write_atomically
from nnexp.errors import OutputError, UserError, environment_fault
from nnexp.runs.checkpoint import load_checkpoint
from nnexp.runs.folder import RunFolder

if TYPE_CHECKING:
    from nnexp.train.build import Experiment

log = logging.getLogger("nnexp")

BEST_CHECKPOINT_FILE = "checkpoint_best.pt"


def save_best(folder: RunFolder, experiment: Experiment, history: list[dict[str, Any]], config: Any) -> None:
    """Write checkpoint_best.pt when a better epoch came since it was last written (atomically)."""
    best = experiment.best
    if best is None or not best.unsaved or best.weights is None:
        return
    state = {
        "model": best.weights,
        "epoch": best.epoch,
        "history": [row for row in history if row["epoch"] <= best.epoch],
        "config": config,
        "data_spec": experiment.data.spec.to_dict(),
        "best": best.record(),
    }
    path = folder.path / BEST_CHECKPOINT_FILE
    try:
        write_atomically(path, lambda handle: torch.save(state, handle))
    except OSError as error:  # a full disk, a folder made read-only: one line, as for checkpoint.pt
        then = folder.then()
        raise environment_fault(error, path, then) or OutputError(
            f"cannot write {path}: {error}; {then}"
        ) from None
    best.unsaved = False


def restore_best(experiment: Experiment, folder: RunFolder) -> None:
    """A resume: the best weights so far back from checkpoint_best.pt, when it holds the epoch that
    checkpoint.pt says is the best (train/best.py's record, restored with the training state)."""
    best = experiment.best
    if best is None or best.epoch == 0 or not best.keep_weights:
        return
    path = folder.path / BEST_CHECKPOINT_FILE
    try:
        state = load_checkpoint(path)
    except UserError as error:
        log.warning("%s: the best weights so far are lost (%s)", path.name, error)
        return
    if state["epoch"] != best.epoch:  # the run stopped between writing it and writing checkpoint.pt
        log.warning(
            "%s holds epoch %d, not the best so far (%d): kept until a better one",
            path.name,
            state["epoch"],
            best.epoch,
        )
        return
    best.weights = state["model"]


def weights_to_test(experiment: Experiment, trainer: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """With `trainer.test_on=best`, load the best epoch's weights into the model: the final metrics, the
    views and the model a run returns are theirs. Returns (what summary.json records, the last weights as
    {"model": ...} for checkpoint.pt, which a resume continues from; {} with test_on=last)."""
    best, test_on = experiment.best, trainer.get("test_on", "last")
    if best is None:
        return {}, {}
    record: dict[str, Any] = {"test_on": test_on}
    if best.epoch:
        record["best_epoch"] = best.epoch
    if test_on != "best":
        return record, {}
    if best.epoch:
        record["best_checkpoint"] = {"file": BEST_CHECKPOINT_FILE, **best.record()}
    if best.weights is None:
        log.warning(
            "trainer.test_on=best: no best weights (%s was never evaluated): testing the last", best.monitor
        )
        record["test_on"] = "last"
        return record, {}
    last = {name: tensor.detach().clone() for name, tensor in experiment.model.state_dict().items()}
    experiment.model.load_state_dict(best.weights)
    log.info(
        "testing the weights of epoch %d, the best %s (%.4g): trainer.test_on=best",
        best.epoch,
        best.monitor,
        best.value,
    )
    return record, {"model": last}
