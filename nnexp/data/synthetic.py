"""Random data drawn by nnexp (`data=synthetic`): the lectures' toy problems and parameter counts.

Every input value is drawn uniformly from [low, high); the target follows a rule: a constant (seed 000's
toy: every target is 2.0), a fixed random linear map of the inputs (something to learn), or noise (random
labels: nothing to learn, for counting parameters or timing). The validation and test sets are drawn once;
with `fresh=true` the training batches are new samples every step, as a notebook that calls `torch.rand`
inside its loop trains. The training split still holds one fixed draw of `train_size` samples: what the
final evaluation, the diagnostics and the baselines read, so "train" scores describe data of the same kind.

Every draw comes from a generator seeded with `seed` (fixed sets) or handed in by the training loop
(fresh batches: seeded from the run's seed and the epoch), so a run, a resumed run and a sweep job that
reuses the bundle (nnexp/data/cache.py) all train on the same samples: a FreshSplit keeps no state that a
draw advances.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from nnexp.data import DataBundle, DataSpec, TaskName, TensorSplit
from nnexp.data.folds import hold_out
from nnexp.data.tasks import task_of

SEED_OFFSETS = {"rule": 0, "train": 1, "val": 2, "test": 3}  # one stream per fixed draw
EPOCH_SEED_STEP = 100_003  # the training loop seeds epoch e's batches with seed * 100_003 + e (runs/fit.py)


def fixed_stream(seed: int, part: str) -> torch.Generator:
    """The generator of one fixed draw: the loop's stream of "epoch" -1 to -4, which no run reaches, so a
    fresh batch never repeats the validation or test set. (torch's CPU generator reads only the low 32
    bits of a seed: streams far apart in 64 bits can be the same one.)"""
    return torch.Generator().manual_seed((seed * EPOCH_SEED_STEP - 1 - SEED_OFFSETS[part]) % 2**32)


@dataclass(frozen=True, eq=False)
class Source:
    """How one example is drawn: its inputs' shape and range, and the rule that gives its target."""

    task: TaskName
    shape: tuple[int, ...]
    low: float
    high: float
    rule: str
    num_outputs: int
    value: float = 0.0  # the constant target
    weights: torch.Tensor | None = None  # (features, num_outputs) for the linear rule

    @property
    def draws_labels(self) -> bool:
        """Whether the target is a class label (classification), not a number per output column."""
        return task_of(self.task).predicts_classes

    def draw(self, count: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """`count` examples: inputs (count, *shape) float32 and their targets."""
        inputs = torch.rand((count, *self.shape), generator=generator) * (self.high - self.low) + self.low
        if self.rule == "linear":
            # centred, so no output wins (or leads) for every input alike
            scores = (
                inputs.reshape(count, -1) - (self.low + self.high) / 2
            ) @ self.weights  # (count, outputs)
            return inputs, scores.argmax(dim=1) if self.draws_labels else scores
        if self.draws_labels:  # random labels
            return inputs, torch.randint(0, self.num_outputs, (count,), generator=generator)
        if self.rule == "constant":
            return inputs, torch.full((count, self.num_outputs), float(self.value))
        return inputs, torch.randn((count, self.num_outputs), generator=generator)


class FreshSplit(TensorSplit):
    """A training split whose shuffled batches are new samples from `source` (the loop's generator
    seeds them); read in order (evaluation, diagnostics), it is the fixed draw it holds."""

    def __init__(self, inputs: torch.Tensor, targets: torch.Tensor, source: Source) -> None:
        super().__init__(inputs, targets)
        self.source = source

    def to(self, device: torch.device) -> FreshSplit:
        return FreshSplit(self.inputs.to(device), self.targets.to(device), self.source)

    def batches(
        self, batch_size: int, generator: torch.Generator | None = None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if generator is None:
            yield from super().batches(batch_size)
            return
        device = self.inputs.device
        for start in range(0, len(self), batch_size):
            # drawn on the CPU, where the loop's generator lives, one batch at a time
            inputs, targets = self.source.draw(min(batch_size, len(self) - start), generator)
            yield inputs.to(device), targets.to(device)


def load_synthetic(
    task: TaskName,
    shape: list[int],
    low: float,
    high: float,
    target_rule: str,
    num_outputs: int,
    train_size: int,
    val_size: int,
    test_size: int,
    seed: int,
    fresh: bool = True,
    target_value: float = 0.0,
    folds: int | None = None,
    fold: int | None = None,
) -> DataBundle:
    """The fixed splits drawn once (a size of 0 leaves one out); with `fresh`, training batches drawn anew."""
    features = math.prod(shape)
    weights = None
    if target_rule == "linear":
        # scaled so each output has a variance of about 1, whatever the number of features and their range
        spread = math.sqrt(features) * (high - low) / math.sqrt(12)  # the std of a sum of `features` uniforms
        weights = torch.randn((features, num_outputs), generator=fixed_stream(seed, "rule")) / spread
    source = Source(task, tuple(shape), low, high, target_rule, num_outputs, target_value, weights)

    def fixed(part: str, count: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        if count == 0:
            return None
        return source.draw(count, fixed_stream(seed, part))

    train = fixed("train", train_size)
    val, test = fixed("val", val_size), fixed("test", test_size)
    fold_details: dict[str, Any] = {}
    if folds is not None:  # fresh=false (config/data_checks.py): fold k of the train+val draws validates
        drawn = [train] if val is None else [train, val]
        inputs, targets = torch.cat([x for x, _ in drawn]), torch.cat([y for _, y in drawn])
        labels = targets.numpy() if source.draws_labels else None
        rows, val_rows, fold_details = hold_out(
            np.arange(len(targets)), 0, seed, folds=folds, fold=fold, labels=labels
        )
        train, val = (inputs[rows], targets[rows]), (inputs[val_rows], targets[val_rows])
    bundle = DataBundle(
        spec=DataSpec(
            name="synthetic",
            task=task,
            input_shape=tuple(shape),
            num_outputs=num_outputs,
            details={**_details(source, fresh, train_size, test is not None), **fold_details},
        ),
        train=FreshSplit(*train, source) if fresh else TensorSplit(*train),
        val=None if val is None else TensorSplit(*val),
        test=None if test is None else TensorSplit(*test),
    )
    bundle.spec.sizes.update({name: len(part) for name, part in bundle.splits().items()})
    return bundle


def _details(source: Source, fresh: bool, train_size: int, has_test: bool) -> dict[str, Any]:
    """What summary.json and the results table say about the data."""
    if source.rule == "constant":
        rule = f"the constant {source.value:g}"
    elif source.rule == "linear":
        largest = "the largest output of " if source.draws_labels else ""
        rule = f"{largest}a fixed random linear map of the inputs"
    else:
        rule = "random labels: nothing to learn" if source.draws_labels else "N(0, 1) noise"
    training = (
        f"fresh random samples every step ({train_size} an epoch); train scores are on one fixed draw"
        if fresh
        else f"one fixed draw of {train_size}"
    )
    details: dict[str, Any] = {
        "synthetic": True,
        "inputs": f"uniform in [{source.low:g}, {source.high:g})",
        "target_rule": rule,
        "training": training,
    }
    if not has_test:  # said in the results table
        details["test_split"] = "no test split (data.test_size=0)"
    if source.draws_labels:
        details["classes"] = [str(label) for label in range(source.num_outputs)]
        return details
    # Named as a CSV's columns would be, so predictions.csv and nnexp-predict can name them too.
    if len(source.shape) == 1:
        details["features"] = [f"x{column + 1}" for column in range(source.shape[0])]
    outputs = source.num_outputs
    details["target"] = "y" if outputs == 1 else [f"y{column + 1}" for column in range(outputs)]
    return details
