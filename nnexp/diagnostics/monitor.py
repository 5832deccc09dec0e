"""What the runner calls: `before_training` once, `after_epoch` on each metrics row; findings are logged
as they are found and kept for summary.json."""

from __future__ import annotations

import logging
from typing import Any

from omegaconf import DictConfig
from torch import nn

from nnexp.data import DataBundle
from nnexp.diagnostics import Diagnosis, Finding
from nnexp.diagnostics.probe import Probe
from nnexp.diagnostics.setup import check_initial_loss, check_setup, expected_initial_loss
from nnexp.diagnostics.training import Chance, TrainingWatch, WatchOptions, probe_findings, reachable_optimum
from nnexp.train.losses import LossFn

log = logging.getLogger("nnexp")


# The probe (a forward and backward pass on diagnostics.probe_rows rows) costs about a third of a
# full-batch digits epoch, and a fifth of the fish preset's 7-batch epoch. With diagnostics.probe_every=auto
# it runs after each of the first epochs, where most findings appear, then PROBE_TIMES times more over the
# run (so every epoch of a run of up to 49 epochs), and after the last epoch.
PROBE_FIRST_EPOCHS = 10
PROBE_TIMES = 25


def probe_interval(setting: int | str, epochs: int) -> int:
    """Every how many epochs the probe runs after the first PROBE_FIRST_EPOCHS (which it always probes)."""
    if setting == "auto":
        return max(1, epochs // PROBE_TIMES)
    return int(setting)


class Diagnostics:
    """With `diagnostics.enabled=false` only the stuck-loss check (trainer.stuck_epochs) runs."""

    def __init__(
        self,
        data: DataBundle,
        loss_name: str,
        options: DictConfig,
        trainer: DictConfig,
        steps_per_epoch: int,
        model: nn.Module | None = None,
    ) -> None:
        self.enabled = bool(options.enabled)
        self.diagnosis = Diagnosis(list(options.expect or []))
        self.data = data
        self.loss_name = loss_name
        self.watch_options = WatchOptions(
            after_epochs=options.after_epochs,
            after_steps=options.after_steps,
            steps_per_epoch=steps_per_epoch,
            dead_relu_share=options.dead_relu_share,
            gradient_ratio=options.gradient_ratio,
            stuck_epochs=trainer.get("stuck_epochs", 0),
            stuck_tolerance=trainer.get("stuck_tolerance", 1e-4),
        )
        self.chance = Chance.of(data, loss_name)
        self.watch = TrainingWatch(self.chance, self.watch_options, checks=self.enabled)
        if model is not None and trainer.get("stuck_epochs", 0) > 0:
            self.watch.optimum = reachable_optimum(data, model, loss_name)
        self.probe = Probe(data, options.probe_rows, trainer.batch_size) if self.enabled else None
        self.probe_every = probe_interval(options.get("probe_every", "auto"), trainer.epochs)
        self.epochs = trainer.epochs

    def before_training(self, model: nn.Module, loss_fn: LossFn) -> dict[str, Any] | None:
        """The setup checks on the untrained model; returns the initial loss against the expected one."""
        if self.probe is None:
            return None
        initial = self.probe.measure(model, loss_fn)
        expected = expected_initial_loss(self.loss_name, self.chance, self.data)
        findings = check_setup(model, self.loss_name, self.data, initial)
        findings += check_initial_loss(initial.loss, expected, self.data)
        findings += probe_findings(initial.columns(), self.watch_options, epoch=None)
        for finding in findings:
            self.report(finding)
        record = {"measured": round(initial.loss, 6)}
        if expected is not None:
            record.update(expected=round(expected["expected"], 6), why=expected["why"])
        return record

    def after_epoch(self, model: nn.Module, loss_fn: LossFn, row: dict[str, Any]) -> bool:
        """Add the probe's columns to the epoch's row (on its cadence), then check it; True if it warned."""
        epoch = row["epoch"]
        due = epoch <= PROBE_FIRST_EPOCHS or epoch % self.probe_every == 0 or epoch == self.epochs
        if self.probe is not None and due:
            row.update(self.probe.measure(model, loss_fn).columns())
        warned = False
        for finding in self.watch.update(row):
            warned = self.report(finding) or warned
        for code, epoch in self.watch.pop_resolved():
            if self.diagnosis.resolve(code, epoch) is not None:
                log.info("[%s] resolved at epoch %d: the model now scores better than guessing", code, epoch)
        if self.watch.converged is not None and self.watch.converged[0] == epoch:
            log.info(
                "converged by epoch %d: the training loss %.4g has stopped at the least-squares optimum %.4g",
                epoch, self.watch.converged[1], self.watch.optimum,
            )  # fmt: skip
        return warned

    def replay(self, history: list[dict[str, Any]]) -> None:
        """A resumed run: pass the recorded epochs through the checks again, quietly."""
        for row in history:
            for finding in self.watch.update(row):
                self.diagnosis.add(finding)
            for code, epoch in self.watch.pop_resolved():
                self.diagnosis.resolve(code, epoch)

    def report(self, finding: Finding) -> bool:
        added = self.diagnosis.add(finding)
        if added is not None:
            log.warning("%s", added.line())
        return added is not None

    @property
    def stuck(self) -> bool:
        return self.watch.stuck_found

    def to_list(self) -> list[dict[str, Any]]:
        return self.diagnosis.to_list()
