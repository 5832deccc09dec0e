"""scikit-learn's 8x8 handwritten digits: offline, 1,797 images, 10 classes."""

from __future__ import annotations

import torch

from nnexp.data import DataBundle, DataSpec, TensorSplit, carve_validation, shuffled_split

PIXEL_MAX = 16.0  # the digits' grey levels run 0..16


def load_digits(test_fraction: float, split_seed: int, val_fraction: float) -> DataBundle:
    from sklearn.datasets import load_digits as sklearn_digits

    digits = sklearn_digits()
    images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / PIXEL_MAX  # (N, 1, 8, 8)
    labels = torch.tensor(digits.target, dtype=torch.long)

    train_rows, test_rows = shuffled_split(len(labels), test_fraction, split_seed)
    train_rows, val_rows = carve_validation(train_rows, val_fraction, split_seed)

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
    bundle.spec.details.update(scaling=f"pixels / {PIXEL_MAX:g}, in [0, 1]")
    return bundle
