"""The lecture presets (experiments/lectures/) reproduce what their notebooks show, where that can be checked
cheaply here: seed 001's one-example descent, and the stand-in curve seed 004's regressions run on.
(Seed 003's fish plateau is tests/test_switches.py; every preset's smoke run is tests/test_presets.py.)
"""

from __future__ import annotations

import pandas as pd
import pytest

from conftest import run_folders, run_nnexp
from nnexp.data.curve import curve_table, write_curve_csv

ONE_EXAMPLE = "x1,x2,x3,x4,y1,y2\n0.8,0.4,0.4,0.2,1,0\n"  # seed 001's one example (its preset's header)


def test_one_example_loss_shrinks_by_0_64_per_step_as_in_seed_001(tmp_path):
    """Linear(4,2) on x = [0.8, 0.4, 0.4, 0.2], SGD 0.1: each step scales the residuals by 1 - 0.1 * 2 = 0.8,
    so loss(step 10) / loss(step 1) = 0.64^9 = 0.018014 for any init (the notebook: 0.021996 / 1.221024)."""
    (tmp_path / "one_example.csv").write_text(ONE_EXAMPLE)
    result = run_nnexp("experiment=lectures/one_example", "data.path=one_example.csv", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    losses = pd.read_csv(run_folders(tmp_path)[0] / "metrics.csv")["train_loss"].tolist()
    assert len(losses) == 10
    assert losses[9] / losses[0] == pytest.approx(0.64**9, rel=1e-3)


def test_the_curve_file_is_the_same_for_everyone_and_not_a_straight_line(tmp_path):
    first, second = write_curve_csv(tmp_path / "a.csv"), write_curve_csv(tmp_path / "b.csv")
    assert first.read_bytes() == second.read_bytes()
    table = pd.read_csv(first)
    assert list(table.columns) == ["x", "y"] and len(table) == 100
    line = pd.Series(table["y"]).corr(table["x"]) ** 2  # share of the variance a straight line explains
    assert 0.1 < line < 0.9  # a line explains some of it (the 0.5 x trend), the sine keeps the rest
    assert curve_table(20, seed=1)["x"].is_monotonic_increasing
