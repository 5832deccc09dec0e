"""Checks on `data=toy2d` (nnexp/data/toy2d.py): its shape by name, its size and its noise.

`data.shape` means a tensor shape for data=synthetic ([8], [3,32,32]) and a picture's name here, so the
general rule for that key stands aside for toy2d data (`toy2d_keys`) and this module checks it instead.
Like checks.py, imports nothing heavy.
"""

from __future__ import annotations

import math
from typing import Any

from omegaconf import DictConfig

from nnexp.errors import ConfigError

TOY2D_TARGET = "nnexp.data.toy2d.load_toy2d"
SHAPES = ("moons", "circles", "spirals", "xor")  # nnexp/data/toy2d.py draws each
LEAST_SAMPLES = 10  # enough for a point in each of train, validation and test
# A toy for pictures: 10^7 points are 160 MB of float64 and a minute of drawing; 10^9 filled 8.5 GB
# before the first step, with nothing said.
MOST_SAMPLES = 10_000_000


def is_toy2d(cfg: Any) -> bool:
    data = cfg.get("data") if isinstance(cfg, DictConfig) else None
    return isinstance(data, DictConfig) and data.get("_target_") == TOY2D_TARGET


def toy2d_keys(cfg: Any) -> frozenset[str]:
    """The keys whose general rule does not apply to this config's data: checked by `check_toy2d`."""
    return frozenset({"data.shape"}) if is_toy2d(cfg) else frozenset()


def check_toy2d(cfg: DictConfig) -> None:
    """Quiet unless the data is data=toy2d; else one line naming the key, the value and the choices."""
    if not is_toy2d(cfg):
        return
    data = cfg.data
    shape = data.get("shape")
    if not isinstance(shape, str) or shape not in SHAPES:
        raise ConfigError(
            f"data.shape={shape} is not one of data=toy2d's shapes: use one of {', '.join(SHAPES)} "
            f"(e.g. data.shape=spirals)",
            key="data.shape",
        )
    count = data.get("n_samples")
    whole = isinstance(count, int) and not isinstance(count, bool)
    if not (whole and LEAST_SAMPLES <= count <= MOST_SAMPLES):
        raise ConfigError(
            f"data.n_samples={count} is not allowed: use a whole number of points from {LEAST_SAMPLES} "
            f"to {MOST_SAMPLES:,} (e.g. data.n_samples=1000)",
            key="data.n_samples",
        )
    noise = data.get("noise")
    if not (isinstance(noise, (int, float)) and not isinstance(noise, bool) and math.isfinite(noise)) or (
        noise < 0
    ):
        raise ConfigError(
            f"data.noise={noise} is not allowed: use a standard deviation >= 0 (e.g. data.noise=0.1)",
            key="data.noise",
        )
