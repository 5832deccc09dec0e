"""What stops a run cleanly: a signal (Ctrl-C, SIGTERM), a loss that became NaN, a loss that sticks."""

from __future__ import annotations

import logging
import math
import signal
import threading
from types import FrameType
from typing import Any

import torch

from nnexp.errors import Finding, UserError

log = logging.getLogger("nnexp")


# What a scheduler sends before it stops a job at its time limit or pre-empts it (SLURM --signal, submitit)
PREEMPTION_SIGNALS = (signal.SIGUSR1, signal.SIGUSR2)


class TrainingInterrupted(BaseException):
    """Raised at a batch boundary after the first SIGINT / SIGTERM (or SIGUSR1/2); exit code 128 + signal
    number. `requeue`: a pre-emption signal for which a scheduler (submitit) has its own handler, which
    requeues the job once the run has stopped and checkpointed.

    A BaseException, as KeyboardInterrupt is: a library's `except Exception` (MLflow wraps whatever
    its request raised) must not swallow a stop."""

    def __init__(self, signum: int, requeue: bool = False) -> None:
        self.signum = signum
        self.requeue = requeue
        self.signal_name = signal.Signals(signum).name
        self.exit_code = 128 + signum
        super().__init__(f"interrupted by {self.signal_name}")


class Diverged(UserError):
    """The loss became NaN or infinite: the settings, usually the learning rate, are the user's to fix."""

    exit_code = 3


class StopOnSignal:
    """First SIGINT/SIGTERM/SIGUSR1/SIGUSR2: finish the current batch, then stop. A second: stop at once."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM, *PREEMPTION_SIGNALS)

    def __init__(self) -> None:
        self.requested: int | None = None
        self._at_once = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopOnSignal:
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info: Any) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def at_once(self) -> None:
        """From now on the first signal stops at once: for work with no batch boundary to wait for
        (building the run, reaching a logger's server, a learning-rate range test)."""
        self.check()
        self._at_once = True

    def between_batches(self) -> None:
        """From now on the first signal is acted on at the next batch boundary (training)."""
        self.check()
        self._at_once = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested is not None or self._at_once:
            raise TrainingInterrupted(signum, self._requeues(signum))
        self.requested = signum
        log.warning(
            "%s received: stopping after this batch (send it again to stop at once)",
            signal.Signals(signum).name,
        )

    def check(self) -> None:
        if self.requested is not None:
            raise TrainingInterrupted(self.requested, self._requeues(self.requested))

    def _requeues(self, signum: int) -> bool:
        """A pre-emption signal that a scheduler's own handler (submitit's) was waiting for."""
        return signum in PREEMPTION_SIGNALS and callable(self._previous.get(signum))


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
