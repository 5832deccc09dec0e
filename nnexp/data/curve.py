"""A small 1-D non-linear regression CSV (columns x, y), for seed 004's curve-fitting lessons.

The notebook fits `data/gp.csv`, which is not among the files nnexp can get; this writes a stand-in of the
same kind (one input, a smooth non-linear target with noise), the same for everyone:

    python -m nnexp.data.curve curve.csv            # 100 rows, seed 0
    nnexp experiment=lectures/gp_relu data.path=curve.csv

y = sin(2x) + 0.5 x + N(0, 0.1^2) noise, x uniform in [-3, 3] (numpy's legacy RandomState: stable across
versions).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd


def curve_table(rows: int = 100, seed: int = 0) -> pd.DataFrame:
    """`rows` points of the curve, sorted by x."""
    generator = np.random.RandomState(seed)
    x = np.sort(generator.uniform(-3.0, 3.0, rows))
    y = np.sin(2.0 * x) + 0.5 * x + generator.normal(0.0, 0.1, rows)
    return pd.DataFrame({"x": x.round(6), "y": y.round(6)})


def write_curve_csv(path: str | Path, rows: int = 100, seed: int = 0) -> Path:
    path = Path(path)
    curve_table(rows, seed).to_csv(path, index=False)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m nnexp.data.curve", description=__doc__.splitlines()[0])
    parser.add_argument("path", help="the CSV to write (columns x, y)")
    parser.add_argument("--rows", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    options = parser.parse_args(argv)
    print(write_curve_csv(options.path, options.rows, options.seed))


if __name__ == "__main__":
    main()
