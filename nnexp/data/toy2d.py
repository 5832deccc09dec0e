"""Two-feature toy classification (`data=toy2d data.shape=moons|circles|spirals|xor`): points in the
plane whose classes no straight line separates, for drawing a network's decision boundary as it learns.

moons and circles are scikit-learn's `make_moons` and `make_circles`; spirals (two interleaved arms) and
xor (the four quadrants, opposite ones alike) are drawn here. `noise` is the standard deviation of the
Gaussian noise added to every point, in the units of the plane (the shapes span about [-1, 1]). Splits as
for the digits: a shuffled test part, then validation carved from the rest, all from `seed`.
"""

from __future__ import annotations

import numpy as np
import torch

from nnexp.data import DataBundle, DataSpec, TensorSplit, carve_validation, shuffled_split

SHAPES = ("moons", "circles", "spirals", "xor")
SPIRAL_TURNS = 1.5  # each arm winds this many times around the centre
CIRCLES_FACTOR = 0.5  # the inner circle's radius, the outer's being 1


def toy_points(shape: str, n_samples: int, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(n_samples, 2) float points and (n_samples,) labels 0/1, the classes as even as the count allows."""
    generator = np.random.RandomState(seed)
    if shape == "moons":
        from sklearn.datasets import make_moons

        points, labels = make_moons(n_samples, noise=noise, random_state=generator)
        points = points - [0.5, 0.25]  # centred on the origin, as the other shapes are
    elif shape == "circles":
        from sklearn.datasets import make_circles

        points, labels = make_circles(n_samples, noise=noise, factor=CIRCLES_FACTOR, random_state=generator)
    elif shape == "spirals":
        labels = np.arange(n_samples) % 2
        # sqrt: points spread evenly along the arm's area, not crowded at the centre
        along = np.sqrt(generator.uniform(0.0, 1.0, n_samples)) * SPIRAL_TURNS * 2 * np.pi
        angle = along + np.pi * labels  # the second arm is the first turned half a circle
        radius = along / (SPIRAL_TURNS * 2 * np.pi)  # up to 1
        points = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)
        points = points + generator.normal(0.0, noise, points.shape)
    elif shape == "xor":
        clean = generator.uniform(-1.0, 1.0, (n_samples, 2))
        labels = (clean[:, 0] * clean[:, 1] < 0).astype(int)  # class 1: the quadrants where the signs differ
        points = clean + generator.normal(0.0, noise, clean.shape)
    else:  # config/toy2d_checks.py refuses it first, in one line
        raise ValueError(f"unknown toy2d shape {shape!r}; choose from {', '.join(SHAPES)}")
    return points.astype(np.float32), np.asarray(labels, dtype=np.int64)


def load_toy2d(
    shape: str,
    n_samples: int,
    noise: float,
    seed: int,
    test_fraction: float,
    val_fraction: float,
) -> DataBundle:
    """The shape's points, split into train, validation (when val_fraction > 0) and test."""
    points, labels = toy_points(shape, n_samples, noise, seed)
    inputs, targets = torch.from_numpy(points), torch.from_numpy(labels)
    train_rows, test_rows = shuffled_split(len(labels), test_fraction, seed, "data.test_fraction")
    train_rows, val_rows = carve_validation(train_rows, val_fraction, seed)

    def split(rows: np.ndarray | None) -> TensorSplit | None:
        return None if rows is None else TensorSplit(inputs[rows], targets[rows])

    bundle = DataBundle(
        spec=DataSpec(name="toy2d", task="classification", input_shape=(2,), num_outputs=2),
        train=split(train_rows),
        val=split(val_rows),
        test=split(test_rows),
    )
    bundle.spec.sizes.update({name: len(part) for name, part in bundle.splits().items()})
    bundle.spec.details.update(shape=shape, noise=noise, features=["x1", "x2"], classes=["0", "1"], seed=seed)
    return bundle
