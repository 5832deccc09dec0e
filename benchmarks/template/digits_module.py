"""The MLP of nnexp's default run as a LightningModule in the template's shape: torchmetrics' accuracy and
mean losses per split, the best validation accuracy so far, the optimizer given as a partial."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from torch import nn
from torchmetrics import MaxMetric, MeanMetric
from torchmetrics.classification.accuracy import Accuracy


def mlp(inputs: int, hidden: list[int], outputs: int, dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(inputs, width), nn.ReLU(), nn.Dropout(dropout)]
        inputs = width
    return nn.Sequential(*layers, nn.Linear(inputs, outputs))


class DigitsLitModule(L.LightningModule):
    def __init__(self, net: nn.Module, optimizer: Callable[..., torch.optim.Optimizer]) -> None:
        super().__init__()
        # Not in the checkpoint: torch.load's weights_only refuses the optimizer's Hydra partial
        self.save_hyperparameters(logger=False, ignore=["net", "optimizer"])
        self.net, self.optimizer = net, optimizer
        self.criterion = nn.CrossEntropyLoss()
        splits = ("tr", "val", "test")  # not "train": a ModuleDict key may not shadow Module.train
        self.acc = nn.ModuleDict({split: Accuracy(task="multiclass", num_classes=10) for split in splits})
        self.loss = nn.ModuleDict({split: MeanMetric() for split in splits})
        self.val_acc_best = MaxMetric()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def _step(self, batch: Any, split: str) -> torch.Tensor:
        x, y = batch
        logits = self.forward(x)
        loss = self.criterion(logits, y)
        self.loss[split](loss)
        self.acc[split](logits.argmax(dim=1), y)
        name = "train" if split == "tr" else split
        self.log(f"{name}/loss", self.loss[split], on_step=False, on_epoch=True, prog_bar=True)
        self.log(f"{name}/acc", self.acc[split], on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def on_train_start(self) -> None:
        self.loss["val"].reset()
        self.acc["val"].reset()
        self.val_acc_best.reset()

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "tr")

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._step(batch, "val")

    def on_validation_epoch_end(self) -> None:
        self.val_acc_best(self.acc["val"].compute())
        self.log("val/acc_best", self.val_acc_best.compute(), sync_dist=True, prog_bar=True)

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._step(batch, "test")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return self.optimizer(params=self.trainer.model.parameters())
