"""What a run writes after its final evaluation to show what the model learned.

predictions.csv (every test example, or validation with `outputs.predictions=val|both`); for
classifiers confusion_matrix.csv/.png and the per-class precision and recall (summary.json's
`per_class`); for images predictions.png, top_losses.png and weights.png (the first layer's weights);
for regression fit.png. Language models have their generated samples instead.

A view that cannot be made is a warning, never a failed run: the run's records are already written.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from omegaconf import DictConfig
from rich.table import Table
from torch import nn

from nnexp.data import DataSpec, TensorSplit
from nnexp.data.tasks import task_of
from nnexp.diagnostics.baselines import least_squares_predict, least_squares_weights
from nnexp.forked import InChild, in_child
from nnexp.look import figures, units
from nnexp.look.activations import ACTIVATIONS_PLOT, save_activations
from nnexp.look.boundary import boundary_views
from nnexp.look.predictions import (
    CONFUSION_FILE,
    PREDICTIONS_FILE,
    Predictions,
    class_names,
    per_class,
    predict,
    write_confusion_matrix,
    write_predictions,
)
from nnexp.look.what_ran import headline_of
from nnexp.train.build import autocast_for
from nnexp.train.losses import resolve_loss_name

if TYPE_CHECKING:
    from nnexp.train.build import Experiment

log = logging.getLogger("nnexp")

Picture = tuple[str, Callable[[], "Path | None"]]  # (file name, what draws it)

CONFUSION_PLOT = "confusion_matrix.png"
PREDICTIONS_PLOT = "predictions.png"
TOP_LOSSES_PLOT = "top_losses.png"
WEIGHTS_PLOT = "weights.png"
FIT_PLOT = "fit.png"
SPLITS_OF = {"test": ("test",), "val": ("val",), "both": ("val", "test")}  # outputs.predictions
GRID_EXAMPLES = 32  # predictions.png: the split's first examples
TOP_LOSSES = 16  # top_losses.png: the examples with the highest loss
MAX_UNITS = 64  # weights.png: the first layer's first units


def write_views(experiment: Experiment, cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Write the views into `run_dir`, pictures included; returns what summary.json records of them."""
    record, pictures, hand_over = _views(experiment, cfg, Path(run_dir))
    hand_over(_draw_all(pictures))
    return record


# A run's pictures, queued by `view_records` until `draw_views`: the run records its results first.
_queued: dict[Path, tuple[list[Picture], Callable[[list[Path | None]], None]]] = {}


def view_records(experiment: Experiment, cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """The views' records now (predictions.csv, confusion_matrix.csv, summary.json's `per_class`); their
    pictures are queued for `draw_views(run_dir)`, which the run calls once its results are recorded."""
    record, pictures, hand_over = _views(experiment, cfg, Path(run_dir))
    _queued[Path(run_dir)] = pictures, hand_over
    return record


@dataclass(frozen=True)
class Drawing:
    """The views' pictures being drawn in a forked child (nnexp/forked.py), on the other core, while the
    run draws its learning curves, then the last view (`here`: the two sides then take about as long on
    the default run); `wait()` logs what the child logged and hands the loggers the files."""

    child: InChild[list[Path | None]] | None
    here: list[Picture]
    hand_over: Callable[[list[Path | None]], None]

    def wait(self) -> None:
        drawn_here = _draw_all(self.here)
        self.hand_over([*(self.child.result() if self.child else []), *drawn_here])

    def cancel(self) -> None:
        if self.child is not None:
            self.child.cancel()


def draw_views(run_dir: Path) -> Drawing | None:
    """Begin the pictures `view_records` queued for `run_dir` (none: None); see `Drawing`."""
    queued = _queued.pop(Path(run_dir), None)
    if queued is None:
        return None
    pictures, hand_over = queued
    in_the_child, here = pictures[:-1], pictures[-1:]
    child = in_child(lambda: _draw_all(in_the_child)) if in_the_child else None
    return Drawing(child, here, hand_over)


def _draw_all(pictures: list[Picture]) -> list[Path | None]:
    return [_safely(name, make) for name, make in pictures]


def _views(
    experiment: Experiment, cfg: DictConfig, run_dir: Path
) -> tuple[dict[str, Any], list[Picture], Callable[[list[Path | None]], None]]:
    """(what summary.json records, the pictures to draw, what hands the files drawn to the loggers)."""
    options = cfg.get("outputs") or {}
    spec = experiment.data.spec
    task = task_of(spec.task)
    if not options.get("views", True) or task.generates_text:  # its predictions are text: nnexp-generate
        return {}, [], lambda _drawn: None
    record: dict[str, Any] = {}
    pictures: list[Picture] = []
    headline = headline_of(run_dir)  # every picture says what ran, not the folder's clock time
    predictions = _safely("predictions.csv", lambda: _write_predictions(experiment, cfg, run_dir, options))
    if predictions is not None:
        pictures += (
            _safely(
                "the confusion matrix and pictures",
                lambda: _draw(experiment, predictions, run_dir, record, headline),
            )
            or []
        )
    if task.predicts_classes and len(spec.input_shape) == 3:
        model = experiment.model
        pictures.append((WEIGHTS_PLOT, lambda: _weights(model, spec, run_dir / WEIGHTS_PLOT, headline)))
    # in the data's own plane (look/boundary.py) and inside the model, layer by layer (look/activations.py)
    pictures += boundary_views(experiment, run_dir, headline)
    activations = run_dir / ACTIVATIONS_PLOT
    model, data = experiment.model, experiment.data
    pictures.append((ACTIVATIONS_PLOT, lambda: save_activations(model, data, activations, headline)))
    loggers = [logger for logger in experiment.loggers if hasattr(logger, "log_views")]

    def hand_over(drawn: list[Path | None]) -> None:
        written = [path for path in [*drawn, run_dir / PREDICTIONS_FILE, run_dir / CONFUSION_FILE] if path]
        written = [path for path in written if path.is_file()]
        for logger in loggers:  # tensorboard: images; mlflow: artifacts
            _safely(f"the views for {type(logger).__name__}", lambda logger=logger: logger.log_views(written))

    return record, pictures, hand_over


def _safely(what: str, make: Callable[[], Any]) -> Any:
    try:
        return make()
    except Exception as error:  # the picture is a bonus; the run's numbers are already recorded
        log.warning("could not write %s: %s", what, error)
        return None


def _write_predictions(
    experiment: Experiment, cfg: DictConfig, run_dir: Path, options: Any
) -> Predictions | None:
    """predictions.csv for the chosen splits (the training rows when there is no test split).

    Returns the last chosen split's predictions: the test split's, else the validation's, else training's.
    """
    spec, trainer = experiment.data.spec, cfg.trainer
    loss_name = resolve_loss_name(cfg.loss.name, spec)
    autocast = autocast_for(trainer.get("precision", 32), experiment.device)
    splits = experiment.data.splits()
    chosen = [name for name in SPLITS_OF[options.get("predictions", "test")] if name in splits]
    if "test" not in splits and options.get("predictions", "test") == "test":
        chosen = ["train"]  # data.test_size=0: the rows it trained on are all there is to look at
    found = None
    for position, name in enumerate(chosen):
        found = predict(
            experiment.model,
            splits[name],
            name,
            spec,
            loss_name,
            trainer.eval_batch_size,
            trainer.get("max_eval_batches"),
            autocast,
        )
        write_predictions(found, spec, run_dir / PREDICTIONS_FILE, append=position > 0)
    return found


def _draw(
    experiment: Experiment, predictions: Predictions, run_dir: Path, record: dict[str, Any], headline: str
) -> list[Picture]:
    """The records of `predictions` now (confusion_matrix.csv, `per_class`); [(picture, what draws it)]."""
    spec = experiment.data.spec
    split = experiment.data.splits()[predictions.split]
    task = task_of(spec.task)
    pictures: list[Picture] = []
    if task.predicts_classes:
        matrix, record["per_class"] = per_class(predictions, spec)
        names = class_names(spec)
        write_confusion_matrix(matrix, names, run_dir / CONFUSION_FILE)
        title = f"confusion matrix, {predictions.split} ({len(predictions.index):,} examples)"
        pictures.append(
            (
                CONFUSION_PLOT,
                lambda: figures.save_confusion_matrix(
                    matrix, names, run_dir / CONFUSION_PLOT, title, headline
                ),
            )
        )
        if len(spec.input_shape) == 3:
            pictures.append((PREDICTIONS_PLOT, lambda: _grid(predictions, split, spec, run_dir, headline)))
            pictures.append(
                (TOP_LOSSES_PLOT, lambda: _top_losses(predictions, split, spec, run_dir, headline))
            )
    elif task.predicts_numbers:
        pictures.append(
            (FIT_PLOT, lambda: _fit(experiment, predictions, split, run_dir / FIT_PLOT, headline))
        )
    return pictures


def _inputs(split: TensorSplit, rows: np.ndarray) -> np.ndarray:
    """The split's inputs at `rows` as the model sees them (after the split's transform)."""
    index = torch.as_tensor(rows, device=split.inputs.device)
    inputs = split.inputs[index]
    inputs = inputs if split.transform is None else split.transform(inputs)
    return inputs.float().cpu().numpy()


def _grid(predictions: Predictions, split: TensorSplit, spec: DataSpec, run_dir: Path, headline: str) -> Path:
    """predictions.png: the split's first examples with the predicted label; wrong ones in red."""
    rows = predictions.index[:GRID_EXAMPLES]
    names = class_names(spec)
    predicted, targets = predictions.predicted[rows], predictions.targets[rows]
    labels = [
        names[p] if p == t else f"{names[p]}\ntrue {names[t]}"
        for p, t in zip(predicted, targets, strict=True)
    ]
    title = (
        f"{predictions.split} examples 0-{len(rows) - 1}: the predicted label; "
        f"wrong ones in red, with the true label"
    )
    return figures.save_image_grid(
        _inputs(split, rows),
        labels,
        list(predicted != targets),
        run_dir / PREDICTIONS_PLOT,
        title,
        headline=headline,
    )


def _top_losses(
    predictions: Predictions, split: TensorSplit, spec: DataSpec, run_dir: Path, headline: str
) -> Path:
    """top_losses.png: the examples the model got most wrong, as fastai's plot_top_losses."""
    rows = np.argsort(-predictions.losses, kind="stable")[:TOP_LOSSES]
    names = class_names(spec)
    predicted, targets = predictions.predicted[rows], predictions.targets[rows]
    chance = predictions.probabilities[rows, predicted]
    labels = [
        f"#{row} {names[p]}\ntrue: {names[t]}\n{predictions.losses[row]:.2f} / {c:.2f}"
        for row, p, t, c in zip(rows, predicted, targets, chance, strict=True)
    ]
    title = (
        f"highest losses ({predictions.split}): #index predicted, true label, loss / probability of the "
        f"prediction"
    )
    return figures.save_image_grid(
        _inputs(split, rows),
        labels,
        list(predicted != targets),
        run_dir / TOP_LOSSES_PLOT,
        title,
        headline=headline,
    )


def _weights(model: nn.Module, spec: DataSpec, path: Path, headline: str = "") -> Path | None:
    """weights.png: the first Linear or Conv2d layer's weights as pictures, when they are pictures; when
    that layer maps the picture straight to the classes (softmax regression), each is its class's template."""
    layers = [
        (name, module) for name, module in model.named_modules() if isinstance(module, (nn.Linear, nn.Conv2d))
    ]
    if not layers:
        return None
    name, layer = layers[0]
    weight = layer.weight.detach().float().cpu().numpy()
    pictures = figures.first_layer_pictures(weight[:MAX_UNITS], spec.input_shape)
    if pictures is None:
        return None
    templates = len(layers) == 1 and isinstance(layer, nn.Linear) and len(weight) == spec.num_outputs
    return figures.save_weights(
        pictures,
        f"{name} ({type(layer).__name__})",
        len(weight),
        path,
        headline,
        names=class_names(spec) if templates else None,
        unit="filter" if isinstance(layer, nn.Conv2d) else "unit",
    )


@torch.inference_mode()
def _fit(
    experiment: Experiment, predictions: Predictions, split: TensorSplit, path: Path, headline: str = ""
) -> Path:
    """fit.png: the network's and least squares' predictions against the truth; one feature: the curve.
    Drawn in the data file's units: a z-scored column's mean and spread (look/units.py) are put back."""
    data, spec, model = experiment.data, experiment.data.spec, experiment.model
    y_scale, x_scale = units.target_scale(spec), units.feature_scale(spec)
    weights = least_squares_weights(data)
    rows = torch.as_tensor(predictions.index, device=split.inputs.device)
    baseline = least_squares_predict(weights, split.inputs[rows]).numpy()
    target_name = ", ".join(units.target_names(spec))  # several: one panel
    curve = None
    if tuple(spec.input_shape) == (1,) and predictions.targets.reshape(len(rows), -1).shape[1] == 1:
        everything = torch.cat([part.inputs for part in data.splits().values()])
        grid = torch.linspace(everything.min().item(), everything.max().item(), 200, device=everything.device)
        was_training = model.training
        model.eval()
        network = model(grid[:, None]).float().cpu().numpy()
        model.train(was_training)
        fitted = least_squares_predict(weights, grid[:, None]).numpy()
        feature = (spec.details.get("features") or ["feature"])[0]
        z_scored = x_scale is None and str(spec.details.get("normalization", "")).startswith("z")
        curve = {
            "feature": f"{feature} (z-score)" if z_scored else feature,  # a scale not recorded stays z
            "train_x": units.in_file_units(data.train.inputs.cpu().numpy(), x_scale),
            "train_y": units.in_file_units(data.train.targets.cpu().numpy(), y_scale),
            "shown_x": units.in_file_units(split.inputs[rows].cpu().numpy(), x_scale),
            "shown_y": units.in_file_units(predictions.targets, y_scale),
            "grid": units.in_file_units(grid.cpu().numpy(), x_scale),
            "network": units.in_file_units(network, y_scale),
            "least_squares": units.in_file_units(fitted, y_scale),
        }
    return figures.save_fit(
        units.in_file_units(predictions.targets, y_scale),
        units.in_file_units(predictions.predicted, y_scale),
        units.in_file_units(baseline, y_scale),
        path,
        target_name,
        curve,
        predictions.split,
        headline,
    )


def per_class_view(per_class_metrics: dict[str, Any] | None) -> Table | str | None:
    """The per-class precision and recall for the console: a table, or one line for many classes."""
    if not per_class_metrics:
        return None
    names, split = per_class_metrics["classes"], per_class_metrics["split"]
    precision, recall = per_class_metrics["precision"], per_class_metrics["recall"]
    if len(names) > 12:
        worst, best = int(np.argmin(recall)), int(np.argmax(recall))
        return (
            f"per class ({split}, {len(names)} classes): recall from {recall[worst]:.3g} ({names[worst]}) "
            f"to {recall[best]:.3g} ({names[best]}), precision from {min(precision):.3g} to "
            f"{max(precision):.3g}; all in summary.json and confusion_matrix.csv"
        )
    table = Table(title=f"per class ({split}); recall = the class's accuracy", title_justify="left")
    for column in ("class", "precision", "recall", "examples"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for name, p, r, count in zip(names, precision, recall, per_class_metrics["support"], strict=True):
        table.add_row(name, f"{p:.3f}", f"{r:.3f}", str(count))
    return table
