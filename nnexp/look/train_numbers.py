"""Which train number a view shows: the running mean over the epoch's batches (`train_*`, always recorded)
or the training split evaluated after the epoch (`train_eval_*`, with `trainer.eval_train=true`).

The running mean mixes the weights of every batch of the epoch, with dropout and batch norm in training
mode; the evaluation scores the weights the epoch ended with, as a validation split is scored, and as
the lecture notebooks print the loss on the whole data after each epoch (docs/train-numbers.md).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

EVALUATED = "train_eval_"
RUNNING_LABEL = "train (running mean over the epoch's batches)"
EVALUATED_LABEL = "train (evaluated after the epoch)"
TRAIN_COLOUR, VAL_COLOUR = "tab:blue", "tab:orange"


def has_values(metrics: Mapping[str, Sequence[float]], column: str) -> bool:
    return any(not math.isnan(value) for value in metrics.get(column, []))


def curves(metrics: Mapping[str, Sequence[float]], name: str) -> list[tuple[str, dict[str, Any]]]:
    """(column, matplotlib style with its label) of the train and val curves of metric `name`: the
    evaluated train curve in full when the run has one, the running mean lighter and dashed beside it."""
    running = {"color": TRAIN_COLOUR, "linestyle": "--", "label": RUNNING_LABEL}
    train = [(f"train_{name}", running)]
    if has_values(metrics, f"{EVALUATED}{name}"):
        running.update(alpha=0.45, linewidth=1.0)
        evaluated = {"color": TRAIN_COLOUR, "linestyle": "-", "label": EVALUATED_LABEL}
        train = [(f"{EVALUATED}{name}", evaluated), *train]
    return [*train, (f"val_{name}", {"color": VAL_COLOUR, "linestyle": "-", "label": "val"})]


def evaluated_best(best: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    """The best values over the epochs that were evaluated after an epoch (validation, else the training
    split with trainer.eval_train), and which they are; never a running mean over an epoch's batches."""
    for prefix, said in (("val_", "the validation split"), (EVALUATED, "the training split")):
        chosen = {key: value for key, value in best.items() if key.startswith(prefix)}
        if chosen:
            return chosen, f"evaluated on {said} after each epoch"
    return {}, ""
