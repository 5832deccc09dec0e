"""What stops a run cleanly: a signal (Ctrl-C, SIGTERM), a loss that became NaN, a loss that sticks."""

from __future__ import annotations

import logging
import math
from typing import Any

import torch

from nnexp import stop
from nnexp.errors import Finding, UserError
from nnexp.stop import State, TrainingInterrupted

__all__ = ["Diverged", "DivergenceGuard", "StopOnSignal", "StuckLossDetector", "TrainingInterrupted"]

log = logging.getLogger("nnexp")


class Diverged(UserError):
    """The loss became NaN or infinite: the settings, usually the learning rate, are the user's to fix."""

    exit_code = 3


class StopOnSignal:
    """A run's answer to SIGINT/SIGTERM/SIGUSR1/SIGUSR2, through nnexp.stop (which owns the handlers): at
    once while the run is built, after the current batch once it trains; a second signal stops at once."""

    def __enter__(self) -> StopOnSignal:
        self._stage = stop.enter(State.BUILDING)
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._stage.leave()  # the handlers before the run answer again (submitit's requeues the job)

    @property
    def requested(self) -> int | None:
        """The signal that asked the run to stop after this batch, if one has."""
        return self._stage.requested

    def at_once(self) -> None:
        """From now on the first signal stops at once: for work with no batch boundary to wait for
        (building the run, reaching a logger's server, a learning-rate range test)."""
        self.check()
        self._stage.switch(State.BUILDING)

    def between_batches(self) -> None:
        """From now on the first signal is acted on at the next batch boundary (training)."""
        self.check()
        self._stage.switch(State.TRAINING)

    def check(self) -> None:
        self._stage.check()


class DivergenceGuard:
    """Stops at the first non-finite training loss and names the epoch, the step and the learning rate.

    Reading the loss waits for the device; on a GPU it is read every `cuda_every` steps, so the step
    named there is the step at which it was noticed.
    """

    EXPLODED_FACTOR = 1000.0  # an epoch's loss this many times what guessing scores has blown up

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        device: torch.device,
        cuda_every: int = 50,
        chance: tuple[str, float] | None = None,
    ) -> None:
        self.optimizer = optimizer
        self.every = cuda_every if device.type == "cuda" else 1
        self.epoch = 0
        self.step = 0
        self.chance = chance  # (metric, value): what guessing scores on the training split, when known

    def start_epoch(self, epoch: int) -> None:
        self.epoch, self.step = epoch, 0

    def after_batch(self, loss: torch.Tensor) -> None:
        self.step += 1
        # One read of the loss (a kernel for isfinite as well cost a tenth of a fish-preset batch).
        if self.step % self.every == 0 and not math.isfinite(value := loss.item()):
            self._stop(value)

    def after_epoch(self, train_metrics: dict[str, float]) -> None:
        if not math.isfinite(train_metrics["loss"]):
            self._stop(train_metrics["loss"])
        if self.chance is None:
            return
        metric, guess = self.chance
        value = train_metrics.get(metric, math.nan)
        if guess > 0 and value > self.EXPLODED_FACTOR * guess:
            # Finite, but no model: a run that went on would be recorded as completed with garbage in it.
            lr = self.optimizer.param_groups[0]["lr"]
            raise Finding(
                "exploded-loss",
                f"the training {metric} reached {value:.3g} at epoch {self.epoch}, {value / guess:.2g} times "
                f"the {guess:.4g} that guessing scores (lr={lr:g})",
                "lower the learning rate (optim.lr), or clip gradients (trainer.clip_grad_norm=1)",
                self.epoch,
            ).refuse(Diverged)

    def _stop(self, value: float) -> None:
        lr = self.optimizer.param_groups[0]["lr"]
        name = "NaN" if math.isnan(value) else "infinite"
        raise Finding(
            "non-finite-loss",
            f"loss became {name} at epoch {self.epoch}, step {self.step} (lr={lr:g})",
            "lower the learning rate",
            self.epoch,
        ).refuse(Diverged)


class StuckLossDetector:
    """Warns once when the training loss has not moved (relative change < tolerance) for `epochs` epochs."""

    HINT = "a smaller or larger learning rate, or another initialisation"

    def __init__(self, epochs: int, tolerance: float = 1e-4) -> None:
        self.epochs = epochs
        self.tolerance = tolerance
        self.losses: list[float] = []
        self.warning: str | None = None

    def update(self, epoch: int, train_loss: float) -> str | None:
        """Record an epoch's loss; returns the warning the first time the loss is found stuck."""
        self.losses.append(train_loss)
        if self.warning is not None or self.epochs <= 0 or len(self.losses) <= self.epochs:
            return None
        window = self.losses[-(self.epochs + 1) :]
        spread = max(window) - min(window)
        if spread <= self.tolerance * max(abs(window[-1]), 1e-12):
            self.warning = (
                f"the training loss has not moved for {self.epochs} epochs (stuck at {window[-1]:.4g} "
                f"by epoch {epoch})"
            )
            return self.warning
        return None
