"""The lecture presets (experiments/lectures/) reproduce what their notebooks show, where that can be checked
cheaply here: seed 001's one-example descent, the stand-in curve seed 004's regressions run on, seed 000's
toy on fresh random inputs and seed 003's weight count.
(Seed 003's fish plateau is tests/test_switches.py; every preset's smoke run is tests/test_presets.py.)
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

import nnexp
from conftest import compose_config, read_summary
from nnexp.data.curve import curve_table, write_curve_csv

ONE_EXAMPLE = "x1,x2,x3,x4,y1,y2\n0.8,0.4,0.4,0.2,1,0\n"  # seed 001's one example (its preset's header)


def test_one_example_loss_shrinks_by_0_64_per_step_as_in_seed_001(tmp_path, monkeypatch):
    """Linear(4,2) on x = [0.8, 0.4, 0.4, 0.2], SGD 0.1: each step scales the residuals by 1 - 0.1 * 2 = 0.8,
    so loss(step 10) / loss(step 1) = 0.64^9 = 0.018014 for any init (the notebook: 0.021996 / 1.221024)."""
    (tmp_path / "one_example.csv").write_text(ONE_EXAMPLE)
    monkeypatch.chdir(tmp_path)  # the path is relative, as a user in that folder gives it
    result = nnexp.run(["experiment=lectures/one_example", "data.path=one_example.csv"], output_dir="run")
    losses = pd.read_csv(result.run_dir / "metrics.csv")["train_loss"].tolist()
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


def test_seed_000s_toy_learns_the_constant_on_fresh_inputs_and_raises_only_what_it_declares(
    tmp_path, piped_console
):
    """Linear(784,1) -> Linear(1,1), a new input in [1, 2) every step, target 2, Adam 5e-4, 20 steps: the
    loss falls from its start, and the diagnostics report exactly the codes the preset declares, none of
    them suggesting data.normalize_target (data=synthetic has no such key; the target is constant)."""
    folder = nnexp.run(["experiment=lectures/toy_linear_linear"], output_dir=tmp_path / "run").run_dir
    losses = pd.read_csv(folder / "metrics.csv")["train_loss"]
    assert len(losses) == 20  # one fresh example an epoch: epoch N is the notebook's step N
    assert losses.iloc[-5:].mean() < losses.iloc[0] / 4
    summary = read_summary(folder)
    assert summary["data"]["details"]["target_rule"] == "the constant 2"
    assert summary["data"]["input_shape"] == [784] and summary["num_parameters"] == 785 + 2
    declared = set(compose_config("experiment=lectures/toy_linear_linear").diagnostics.expect)
    assert {finding["code"] for finding in summary["diagnostics"]} == declared
    printed = piped_console() + (folder / "nnexp.log").read_text()  # the console and the run's log
    assert "normalize_target" not in printed + json.dumps(summary)


def test_seed_003s_cnn_run_reports_the_notebooks_310848_weights_and_311114_parameters(tmp_path):
    """The preset as it runs (3x256x256 random image, the notebook's layers): its parameter table, in the
    console and in parameters.json, counts 310,848 weights (the notebook's sum) and 311,114 with biases."""
    folder = nnexp.run(["experiment=lectures/cnn_param_count"], output_dir=tmp_path / "run").run_dir
    counts = json.loads((folder / "parameters.json").read_text())
    assert counts["weights"] == 1_728 + 307_200 + 1_920 == 310_848
    assert counts["total"] == read_summary(folder)["num_parameters"] == 311_114
    assert [row["parameters"] for row in counts["layers"]] == [1_728 + 64, 307_200 + 192, 1_920 + 10]
    assert [row["output_shape"] for row in counts["layers"]] == [[64, 254, 254], [192, 250, 250], [10]]
    logged = (folder / "nnexp.log").read_text()  # the parameter table the CLI prints as the run starts
    assert "310,848" in logged and "311,114" in logged


def test_the_weight_count_leaves_out_every_bias_a_recurrent_layers_too():
    """`weights` in parameters.json: nn.RNN names its biases bias_ih_l0 and bias_hh_l0."""
    from torch import nn

    from nnexp.models.summary import format_parameter_counts, parameter_counts

    counts = parameter_counts(nn.Sequential(nn.RNN(3, 4), nn.Linear(4, 2)))
    assert counts["total"] == (4 * 3 + 4 * 4 + 4 + 4) + (4 * 2 + 2)
    assert counts["weights"] == 4 * 3 + 4 * 4 + 4 * 2
    assert "no biases" in format_parameter_counts(counts)
    assert "no biases" not in format_parameter_counts(parameter_counts(nn.Linear(2, 1, bias=False)))
