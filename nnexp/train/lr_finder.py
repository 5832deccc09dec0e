"""The learning-rate range test (`nnexp +lr_find=exponential`), as fast.ai's and Lightning's lr_find.

From the freshly built model, train one batch per step while the learning rate grows exponentially
from start_lr to end_lr; record the loss at each lr and suggest the lr where the smoothed loss falls
fastest. Nothing is restored afterwards: the run ends with the sweep, and no checkpoint is written,
since a model trained at every lr in turn is no model to keep.
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nnexp.config.lr_find import LrFinderOptions

if TYPE_CHECKING:  # torch is imported where it runs: the config checks read LrFinderOptions without it
    import torch

    from nnexp.train.build import Experiment

log = logging.getLogger("nnexp")

CSV_FILE = "lr_find.csv"
PLOT_FILE = "lr_find.png"

TrainEpoch = Callable[..., dict[str, float]]  # loop.train_one_epoch, its task and state bound


class LossCurve:
    """The loss at each lr, and its exponential moving average, debiased so its first steps are not
    pulled towards zero (fast.ai's and Lightning's smoothing).

    The stop rule compares with the lowest smoothed loss after the first `settle_steps`: before them
    the average is one or two batches, and one lucky batch would stop the sweep before it began.
    """

    def __init__(self, smoothing: float, stop_factor: float, settle_steps: int = 0) -> None:
        self.smoothing = smoothing
        self.stop_factor = stop_factor
        self.settle_steps = settle_steps
        self.lrs: list[float] = []
        self.losses: list[float] = []
        self.smoothed: list[float] = []
        self._average = 0.0

    def add(self, lr: float, loss: float) -> str | None:
        """Record one step; return why the sweep should stop now, or None to go on."""
        if not math.isfinite(loss):
            return f"the loss became {loss} at lr {lr:.2g}"
        self._average = self.smoothing * self._average + (1 - self.smoothing) * loss
        smoothed = self._average / (1 - self.smoothing ** (len(self.losses) + 1))
        self.lrs.append(lr)
        self.losses.append(loss)
        self.smoothed.append(smoothed)
        settled = self.smoothed[self.settle_steps :]
        if settled and smoothed > self.stop_factor * min(settled):
            return f"the smoothed loss rose above {self.stop_factor:g} x its minimum at lr {lr:.2g}"
        return None


@dataclass(frozen=True)
class Suggestion:
    lr: float | None  # None: no descent to suggest from
    reason: str


# Each slope is measured across this many decades of lr either side: on noisy minibatch losses (fish,
# batches of 16) neighbouring points made single lucky batches at lr 1e-6 the "steepest descent"; over
# half a decade a real descent still shows and one batch no longer does.
SLOPE_HALF_WIDTH_DECADES = 0.5


def suggest(lrs: list[float], smoothed: list[float], skip_start: int) -> Suggestion:
    """The lr at the steepest descent of the smoothed loss against log(lr), looked for on the way down
    to the lowest smoothed loss (beyond it the lr is already too high), past the first `skip_start`."""
    if len(smoothed) < skip_start + 2:
        return Suggestion(
            None,
            f"only {len(smoothed)} steps were recorded, too few to find a descent after the first "
            f"{skip_start}: lower lr_find.start_lr or raise lr_find.num_steps",
        )
    lowest = min(range(skip_start, len(smoothed)), key=smoothed.__getitem__)
    log_lrs = [math.log10(lr) for lr in lrs]
    width = max(1, round(SLOPE_HALF_WIDTH_DECADES / (log_lrs[1] - log_lrs[0])))  # in steps
    slopes = {step: _slope(log_lrs, smoothed, step, width) for step in range(skip_start, lowest + 1)}
    steepest = min(slopes, key=slopes.__getitem__)
    if slopes[steepest] >= 0:
        return Suggestion(
            None,
            f"the smoothed loss did not fall after the first {skip_start} steps (lowest at lr "
            f"{lrs[lowest]:.2g}): lower lr_find.start_lr, or check the model, the loss and the data",
        )
    return Suggestion(lrs[steepest], "steepest descent of the smoothed loss")


def _slope(x: list[float], y: list[float], i: int, width: int) -> float:
    """dy/dx at point i, across `width` points either side (fewer at the ends)."""
    before, after = max(i - width, 0), min(i + width, len(y) - 1)
    return (y[after] - y[before]) / (x[after] - x[before])


@dataclass
class LrFinderResult:
    lrs: list[float]
    losses: list[float]
    smoothed_losses: list[float]
    suggestion: Suggestion
    stopped_early: str | None  # why the sweep ended before num_steps, if it did
    seconds: float

    @property
    def suggested_lr(self) -> float | None:
        return self.suggestion.lr

    def to_summary(self) -> dict[str, Any]:
        return {
            "suggested_lr": self.suggested_lr,
            "reason": self.suggestion.reason,
            "steps": len(self.lrs),
            "lr_range": [self.lrs[0], self.lrs[-1]] if self.lrs else [],
            "stopped_early": self.stopped_early,
            "seconds": round(self.seconds, 3),
        }

    def advice(self) -> str:
        """The console line: the suggestion and the override that uses it, or why there is none."""
        if self.suggested_lr is None:
            return f"no learning rate suggested: {self.suggestion.reason}"
        lr = self.suggested_lr
        return f"suggested learning rate: {lr:.1e} ({self.suggestion.reason}); train with optim.lr={lr:.2g}"


class _SweepOver(Exception):
    def __init__(self, reason: str | None) -> None:
        self.reason = reason


def find_lr(
    experiment: Experiment,
    options: LrFinderOptions,
    batch_size: int,
    train_epoch: TrainEpoch,
    clip_grad_norm: float | None = None,
    seed: int = 0,
    check_stop: Callable[[], None] | None = None,
) -> LrFinderResult:
    """Train `experiment` for up to `options.num_steps` batches with an exponentially growing lr.

    `train_epoch` is the loop the run would train with (for a language model it carries the hidden
    state), so each step is a real training step: the task's loss plus any penalty, clipping, bf16.
    Only the optimizer's lr is changed; its other settings and its state are used as they are.
    """
    import torch

    from nnexp.train.augment import augmented

    started = time.perf_counter()
    optimizer = experiment.optimizer
    curve = LossCurve(options.smoothing, options.stop_factor, settle_steps=options.skip_start)
    data = experiment.data
    train = data.train if experiment.augment is None else augmented(data.train, experiment.augment)
    _set_lr(optimizer, options.lr_at(0))

    def after_step(loss: torch.Tensor) -> None:
        if check_stop is not None:
            check_stop()  # a stop signal asked for and not yet acted on (see nnexp.stop)
        reason = curve.add(optimizer.param_groups[0]["lr"], loss.item())
        if reason is not None or len(curve.lrs) == options.num_steps:
            raise _SweepOver(reason)
        _set_lr(optimizer, options.lr_at(len(curve.lrs)))

    stopped_early = None
    try:
        # Each pass over the training split is one call of the loop, so a carried hidden state
        # starts afresh with each pass, as it does each epoch in training.
        for sweep_pass in itertools.count(1):
            recorded = len(curve.lrs)
            order = torch.Generator().manual_seed(seed * 100_003 + sweep_pass)
            train_epoch(
                experiment.model,
                train.batches(batch_size, order),
                experiment.loss_fn,
                optimizer,
                penalty=experiment.penalty,
                clip_grad_norm=clip_grad_norm,
                on_batch=after_step,
            )
            if len(curve.lrs) == recorded:
                raise _SweepOver("the training split gave no batch")
    except _SweepOver as over:
        stopped_early = over.reason
    return LrFinderResult(
        lrs=curve.lrs,
        losses=curve.losses,
        smoothed_losses=curve.smoothed,
        suggestion=suggest(curve.lrs, curve.smoothed, options.skip_start),
        stopped_early=stopped_early,
        seconds=time.perf_counter() - started,
    )


def _set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
