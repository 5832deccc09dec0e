"""scikit-learn's 8x8 handwritten digits: offline, 1,797 images, 10 classes."""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np
import torch

from nnexp.data import DataBundle, DataSpec, TensorSplit, shuffled_split
from nnexp.data.folds import hold_out

PIXEL_MAX = 16.0  # the digits' grey levels run 0..16


def load_digits(
    test_fraction: float,
    split_seed: int,
    val_fraction: float,
    scale: bool = True,
    folds: int | None = None,
    fold: int | None = None,
) -> DataBundle:
    """`scale=false` keeps the raw grey levels 0..16: the unscaled-inputs mistake, for the diagnostics."""
    pixels, targets = digits_arrays()
    images = torch.tensor(pixels, dtype=torch.float32).unsqueeze(1)  # (N, 1, 8, 8)
    if scale:
        images = images / PIXEL_MAX
    labels = torch.tensor(targets, dtype=torch.long)

    train_rows, test_rows = shuffled_split(len(labels), test_fraction, split_seed, "data.test_fraction")
    # data.folds: fold `fold` of the train+val rows validates (data/folds.py), else data.val_fraction
    train_rows, val_rows, fold_details = hold_out(
        train_rows, val_fraction, split_seed, folds=folds, fold=fold, labels=targets[train_rows]
    )

    def split(rows):
        return None if rows is None else TensorSplit(images[rows], labels[rows])

    bundle = DataBundle(
        spec=DataSpec(
            name="digits",
            task="classification",
            input_shape=(1, 8, 8),
            num_outputs=10,
        ),
        train=split(train_rows),
        val=split(val_rows),
        test=split(test_rows),
    )
    sizes = {name: len(part) for name, part in bundle.splits().items()}
    bundle.spec.sizes.update(sizes)
    scaling = f"pixels / {PIXEL_MAX:g}, in [0, 1]" if scale else f"raw grey levels 0..{PIXEL_MAX:g}"
    # A white pixel of a new image (nnexp-predict) becomes the data's ink value: 1 scaled, 16 raw.
    pixel_scale = {"white": 1.0 if scale else PIXEL_MAX, "mean": 0.0, "std": 1.0}
    classes = [str(digit) for digit in range(10)]
    bundle.spec.details.update(scaling=scaling, pixel_scale=pixel_scale, classes=classes, **fold_details)
    return bundle


def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The images (1797, 8, 8) and labels (1797,), read from the file scikit-learn ships as its own
    `load_digits` reads it, without importing scikit-learn: that import takes longer than the whole
    of a digits run's data loading (1.3 s, with scipy and pandas). scikit-learn's loader is the fallback
    should the file ever move."""
    spec = importlib.util.find_spec("sklearn")  # finds the package without running it
    folders = spec.submodule_search_locations if spec is not None else None
    shipped = Path(folders[0], "datasets", "data", "digits.csv.gz") if folders else None
    if shipped is None or not shipped.is_file():
        from sklearn.datasets import load_digits as sklearn_digits

        digits = sklearn_digits()
        return digits.images, digits.target
    with gzip.open(shipped, mode="rt", encoding="utf-8") as file:
        table = np.loadtxt(file, delimiter=",")  # (1797, 65): 64 grey levels, then the label
    return table[:, :-1].reshape(-1, 8, 8), table[:, -1].astype(int)
