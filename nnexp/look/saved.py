"""A finished run's model, rebuilt from its folder: the checkpoint's weights, config and data spec.

Shared by what uses a saved model on new inputs: `nnexp-generate` (text) and `nnexp-predict` (rows, images).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from nnexp.config.trust import check_untrusted
from nnexp.data import DataSpec
from nnexp.errors import DataError, first_line


@dataclass
class SavedRun:
    path: Path
    model: nn.Module  # in eval mode, on the CPU
    spec: DataSpec
    config: dict[str, Any]


def load_saved_run(run_dir: Path, trusted: Collection[str] = ()) -> SavedRun:
    """The run's model with its trained weights; one-line DataError when the folder holds no usable one.

    `trusted`: the user's own targets (model=custom's class) the command names; any other is refused.
    """
    from hydra.errors import InstantiationException  # a trusted class given arguments it does not take
    from omegaconf import OmegaConf

    from nnexp.runs.checkpoint import load_checkpoint
    from nnexp.runs.folder import CHECKPOINT_FILE
    from nnexp.train.build import build_model

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DataError(
            f"{run_dir}: no such run folder; give the folder of a finished run (outputs/<date>/<time>)"
        )
    checkpoint_path = run_dir / CHECKPOINT_FILE
    runs = sorted(path.parent for path in run_dir.glob(f"*/{CHECKPOINT_FILE}"))
    if not checkpoint_path.is_file() and runs:  # a sweep's folder: its runs are one level down
        raise DataError(f"{run_dir} holds the runs of a sweep, not one run: give one of them, e.g. {runs[0]}")
    if not checkpoint_path.is_file():
        raise DataError(
            f"{checkpoint_path} does not exist: give the folder of a run that trained (an lr range test or a "
            f"run stopped before its first epoch keeps no model)"
        )
    checkpoint = load_checkpoint(checkpoint_path)
    check_untrusted(  # before anything in it is built
        checkpoint.get("config"), str(checkpoint_path), trusted, lambda name: f"add --trust {name}"
    )
    try:
        spec_fields = dict(checkpoint["data_spec"])
        spec = DataSpec(**{**spec_fields, "input_shape": tuple(spec_fields["input_shape"])})
        config = dict(checkpoint["config"])
        model = build_model(OmegaConf.create(config["model"]), spec)
        model.load_state_dict(checkpoint["model"])
    except (KeyError, TypeError, ValueError, RuntimeError, InstantiationException) as error:
        raise DataError(f"{checkpoint_path} is not a checkpoint nnexp wrote ({first_line(error)})") from None
    model.eval()
    return SavedRun(run_dir, model, spec, config)


__all__ = ["SavedRun", "load_saved_run"]
