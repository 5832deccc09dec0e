"""The model's outputs on a fixed grid every few epochs, kept for the training animation.

For classification of two input features: the predicted class and how sure the model is, over a grid that
covers the data (the decision boundary). For regression of one feature onto one target: the predicted curve.
runs/fit.py calls `after_epoch` once an epoch; on about FRAMES epochs of the run (and before the first)
this runs the model on the grid and keeps numpy arrays, written to snapshots.npz in the run folder, so the
drawing (look/boundary.py, training.gif) happens once, at the end, from the file. A resumed run keeps the
snapshots up to the epoch it resumes from.

The grid is a few thousand points in eval mode with no gradients: it consumes no random numbers and
changes nothing the training reads (batch-norm statistics stay as they are in eval mode).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from nnexp.atomic import write_atomically
from nnexp.data import DataBundle, DataSpec
from nnexp.data.tasks import task_of

SNAPSHOTS_FILE = "snapshots.npz"
# At least this many snapshots in a run of 10 epochs or more, at most about twice as many; and the untrained
# model's. (The default toy2d run of 30 epochs: 11.)
FRAMES = 10
# Points along each side of the 2-D grid, drawn smoothed: 4,096 points a snapshot, which the default MLP
# (256, 256) runs in an eighth of a toy2d training epoch (34 ms against 265 ms on 2 shared cores; 80: 60 ms).
GRID = 64
CURVE_POINTS = 200  # points along the 1-D curve
MARGIN = 0.1  # the grid reaches this share of the data's span beyond it on every side
MAX_POINTS = 1000  # training points kept to draw (and score each frame on)


def watched(spec: DataSpec) -> str | None:
    """`boundary` (2 features, classes), `curve` (1 feature, 1 target), or None: nothing to animate."""
    task = task_of(spec.task)
    if tuple(spec.input_shape) == (2,) and task.predicts_classes:
        return "boundary"
    if tuple(spec.input_shape) == (1,) and task.predicts_numbers and spec.num_outputs == 1:
        return "curve"
    return None


def grid_axes(data: DataBundle, kind: str, points: int | None = None) -> list[np.ndarray]:
    """The grid's coordinates along each input feature: one axis for a curve, two for a boundary;
    `points` along each (GRID or CURVE_POINTS when not given)."""
    inputs = torch.cat([split.inputs for split in data.splits().values()]).float().cpu().numpy()
    inputs = inputs.reshape(len(inputs), -1)
    low, high = inputs.min(axis=0), inputs.max(axis=0)
    span = np.maximum(high - low, 1e-6)
    points = points or (GRID if kind == "boundary" else CURVE_POINTS)
    return [
        np.linspace(low[f] - MARGIN * span[f], high[f] + MARGIN * span[f], points, dtype=np.float32)
        for f in range(inputs.shape[1])
    ]


def grid_inputs(axes: list[np.ndarray]) -> torch.Tensor:
    """(points, features): every grid point, the first feature varying fastest (row y, column x)."""
    if len(axes) == 1:
        return torch.from_numpy(axes[0][:, None])
    xs, ys = np.meshgrid(axes[0], axes[1])  # (GRID, GRID): rows follow the second feature
    return torch.from_numpy(np.stack([xs.ravel(), ys.ravel()], axis=1))


@torch.inference_mode()
def outputs_on(model: nn.Module, inputs: torch.Tensor) -> np.ndarray:
    """The model's outputs for `inputs`, in eval mode; the model's own mode is restored after."""
    was_training = model.training
    model.eval()
    try:
        return model(inputs).float().cpu().numpy().reshape(len(inputs), -1)
    finally:
        model.train(was_training)


def boundary_of(outputs: np.ndarray, side: int) -> tuple[np.ndarray, np.ndarray]:
    """(side, side) predicted classes and the softmax probability of each, as uint8 (255 = sure)."""
    shifted = np.nan_to_num(outputs - outputs.max(axis=1, keepdims=True), nan=0.0)
    probabilities = np.exp(shifted)
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    classes = probabilities.argmax(axis=1)
    sure = np.round(probabilities.max(axis=1) * 255)
    return classes.astype(np.uint8).reshape(side, side), sure.astype(np.uint8).reshape(side, side)


def choose_every(epochs: int) -> int:
    """Snapshot every this many epochs: from FRAMES to about twice as many frames, whatever the length."""
    return max(1, epochs // FRAMES)


@dataclass
class Snapshots:
    """What the run's grid looked like on the chosen epochs; `after_epoch` adds to it."""

    kind: str  # "boundary" or "curve"
    path: Path
    every: int
    axes: list[np.ndarray]
    grid: torch.Tensor  # on the model's device
    points: torch.Tensor  # training inputs shown and scored, on the device
    targets: np.ndarray
    metric: str  # what each frame says of the training points: accuracy or mse
    epochs: list[int] = field(default_factory=list)
    frames: dict[str, list[np.ndarray]] = field(default_factory=dict)
    scores: list[float] = field(default_factory=list)

    @classmethod
    def start(cls, experiment: Any, cfg: Any, run_dir: Path, start_epoch: int) -> Snapshots | NotWatching:
        """The snapshots of this run, with the untrained model's taken now; a do-nothing when its data
        has nothing to animate or the views are off (`outputs.views=false`)."""
        data = experiment.data
        kind = watched(data.spec)
        views_on = (cfg.get("outputs") or {}).get("views", True)
        if kind is None or not views_on or data.train.transform is not None:
            return NotWatching()
        axes = grid_axes(data, kind)
        device = data.train.inputs.device
        shown = slice(0, MAX_POINTS)
        snapshots = cls(
            kind=kind,
            path=Path(run_dir) / SNAPSHOTS_FILE,
            every=choose_every(cfg.trainer.epochs),
            axes=axes,
            grid=grid_inputs(axes).to(device),
            points=data.train.inputs[shown].float(),
            targets=data.train.targets[shown].cpu().numpy(),
            metric="accuracy" if kind == "boundary" else "mse",
        )
        if start_epoch > 0:
            snapshots._keep_until(start_epoch)
        else:
            snapshots.take(0, experiment.model)
        return snapshots

    def after_epoch(self, epoch: int, model: nn.Module, last: bool) -> None:
        """Take a snapshot when `epoch` is a chosen one or the run's last."""
        if last or epoch % self.every == 0:
            self.take(epoch, model)

    def take(self, epoch: int, model: nn.Module) -> None:
        if self.epochs and self.epochs[-1] == epoch:
            return
        outputs = outputs_on(model, self.grid)
        on_points = outputs_on(model, self.points)
        if self.kind == "boundary":
            classes, sure = boundary_of(outputs, len(self.axes[0]))
            self._add(classes=classes, sure=sure)
            score = float((on_points.argmax(axis=1) == self.targets).mean())
        else:
            self._add(curve=outputs[:, 0].astype(np.float32))
            score = float(np.mean((on_points[:, 0] - self.targets.reshape(-1)) ** 2))
        self.epochs.append(epoch)
        self.scores.append(score)
        self._write()

    def _add(self, **arrays: np.ndarray) -> None:
        for name, array in arrays.items():
            self.frames.setdefault(name, []).append(array)

    def _write(self) -> None:
        """The whole file again (a few hundred kB at most): a run stopped at any point leaves a whole one."""
        buffer = io.BytesIO()
        np.savez(
            buffer,
            kind=np.array(self.kind),
            metric=np.array(self.metric),
            epochs=np.array(self.epochs),
            scores=np.array(self.scores),
            points=self.points.cpu().numpy(),
            targets=self.targets,
            **{f"axis{number}": axis for number, axis in enumerate(self.axes)},
            **{name: np.stack(frames) for name, frames in self.frames.items()},
        )
        write_atomically(self.path, buffer.getvalue(), durable=False)  # a picture's data, not a record

    def _keep_until(self, epoch: int) -> None:
        """A resumed run: the frames the stopped run took up to the epoch it resumes from."""
        try:
            saved = read_snapshots(self.path)
        except (OSError, ValueError, KeyError):
            return  # none, or not whole: the animation starts here
        if saved["kind"] != self.kind or not saved["frames"]:
            return
        kept = [index for index, number in enumerate(saved["epochs"]) if number <= epoch]
        self.epochs = [int(saved["epochs"][index]) for index in kept]
        self.scores = [float(saved["scores"][index]) for index in kept]
        self.frames = {name: [frames[index] for index in kept] for name, frames in saved["frames"].items()}


class NotWatching:
    """The snapshots of a run with nothing to animate: every call does nothing."""

    def after_epoch(self, epoch: int, model: nn.Module, last: bool) -> None:
        return None


def read_snapshots(path: Path) -> dict[str, Any]:
    """What snapshots.npz holds: kind, metric, epochs, scores, points, targets, axes, frames by name."""
    with np.load(path, allow_pickle=False) as saved:
        found = {name: saved[name] for name in saved.files}
    frames = {name: found.pop(name) for name in ("classes", "sure", "curve") if name in found}
    axes = [found.pop(name) for name in sorted(found) if name.startswith("axis")]
    return {
        **found,
        "kind": str(found["kind"]),
        "metric": str(found["metric"]),
        "axes": axes,
        "frames": frames,
    }
