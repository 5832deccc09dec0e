"""scikit-learn's digits as a LightningDataModule, split as benchmarks/hand/digits_mlp.py splits it."""

from __future__ import annotations

import lightning as L
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch.utils.data import DataLoader, TensorDataset


class DigitsDataModule(L.LightningDataModule):
    def __init__(self, batch_size: int = 32, num_workers: int = 0, split_seed: int = 1234) -> None:
        super().__init__()
        self.save_hyperparameters(logger=False)
        self.train_set = self.val_set = self.test_set = None

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        digits = load_digits()
        x = torch.tensor(digits.images, dtype=torch.float32).reshape(-1, 64) / 16
        y = torch.tensor(digits.target)
        seed = self.hparams.split_seed
        x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=seed)
        x_train, x_val, y_train, y_val = train_test_split(x_train, y_train, test_size=0.1, random_state=seed)
        self.train_set = TensorDataset(x_train, y_train)
        self.val_set, self.test_set = TensorDataset(x_val, y_val), TensorDataset(x_test, y_test)

    def _loader(self, dataset: TensorDataset, shuffle: bool) -> DataLoader:
        return DataLoader(
            dataset, batch_size=self.hparams.batch_size, num_workers=self.hparams.num_workers, shuffle=shuffle
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, shuffle=False)
