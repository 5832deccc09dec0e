"""Checkpoints that resume a run exactly, and load without running any code.

A checkpoint holds everything the next epoch depends on: weights, optimiser, scheduler and
early-stopping state, the metric history, and the torch and Python random states. The data order
needs no state: it is seeded by (seed, epoch).
"""

from __future__ import annotations

import pickle
import random
import zipfile
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from nnexp.errors import UserError, first_line


class CheckpointError(UserError):
    """A checkpoint that is missing, damaged or not made of plain tensors and numbers."""


def training_state(
    experiment: Any, epoch: int, history: list[dict[str, Any]], cfg: DictConfig | dict[str, Any]
) -> dict:
    """What `restore_training_state` needs to continue after `epoch` as if never stopped.

    `cfg` may be the resolved config as a dict already (the epoch loop resolves it once per run).
    """
    state = {
        "model": experiment.model.state_dict(),
        "optimizer": experiment.optimizer.state_dict(),
        "scheduler": experiment.scheduler.state_dict() if experiment.scheduler is not None else None,
        "early_stopping": (
            experiment.early_stopping.state_dict() if experiment.early_stopping is not None else None
        ),
        # the best epoch so far (its weights are in checkpoint_best.pt) and fp16's loss scale
        "best": experiment.best.record() if getattr(experiment, "best", None) is not None else None,
        "grad_scaler": experiment.scaler.state_dict() if getattr(experiment, "scaler", None) else None,
        "epoch": epoch,
        "history": history,
        "rng": {"torch": torch.get_rng_state(), "python": random.getstate()},
        "config": cfg if isinstance(cfg, dict) else OmegaConf.to_container(cfg, resolve=True),
        "data_spec": experiment.data.spec.to_dict(),
    }
    if torch.cuda.is_available() and experiment.device.type == "cuda":
        state["rng"]["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_training_state(experiment: Any, state: dict) -> tuple[int, list[dict[str, Any]]]:
    """Put the model, optimiser, schedules and random states back; returns (epoch, history)."""
    experiment.model.load_state_dict(state["model"])
    experiment.optimizer.load_state_dict(state["optimizer"])
    if experiment.scheduler is not None and state.get("scheduler") is not None:
        experiment.scheduler.load_state_dict(state["scheduler"])
    if experiment.early_stopping is not None and state.get("early_stopping") is not None:
        experiment.early_stopping.load_state_dict(state["early_stopping"])
    if getattr(experiment, "best", None) is not None and state.get("best"):  # older checkpoints have none
        experiment.best.load_record(state["best"])
    if getattr(experiment, "scaler", None) is not None and state.get("grad_scaler"):
        experiment.scaler.load_state_dict(state["grad_scaler"])
    torch.set_rng_state(state["rng"]["torch"])
    random.setstate(_as_tuples(state["rng"]["python"]))
    if "cuda" in state["rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["rng"]["cuda"])
    return state["epoch"], list(state["history"])


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict:
    """torch.load with weights_only=True: a pickle that would run code is refused, never executed."""
    if not path.is_file():
        raise CheckpointError(
            f"no checkpoint at {path}, so there is nothing to resume from (the run stopped before training "
            f"began, was a learning-rate range test, which keeps none, or the file was removed); start it "
            f"again with the overrides in "
            f"{path.parent / '.hydra' / 'overrides.yaml'}"
        )
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive: anything else is not read at all
        raise CheckpointError(f"corrupt checkpoint {path}: it is not a file torch.save wrote")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        if "global" in str(error).lower():  # a class or function to import and call: code
            raise CheckpointError(
                f"checkpoint {path} holds code, not only tensors and numbers: refusing to load it"
            ) from None
        raise CheckpointError(f"corrupt checkpoint {path}: {first_line(error)}") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as error:
        raise CheckpointError(f"corrupt checkpoint {path}: {first_line(error)}") from None
    if not (
        isinstance(state, dict)
        and isinstance(state.get("model"), dict)
        and isinstance(state.get("epoch"), int)
        and not isinstance(state.get("epoch"), bool)
        and isinstance(state.get("history"), list)
        and state["epoch"] >= 0
    ):
        raise CheckpointError(f"corrupt checkpoint {path}: it is not a training state nnexp wrote")
    return state


def _as_tuples(value: Any) -> Any:
    return tuple(_as_tuples(item) for item in value) if isinstance(value, (list, tuple)) else value
