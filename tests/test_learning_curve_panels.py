"""learning_curves.png draws no panel twice and shows what metrics.csv records beside the curves (issue 26):
the per-layer gradient norms, the dead-ReLU shares and a scheduler's learning rate; report.html sets a
preset's expected diagnostics apart from real problems.

Every run here is a real tiny run (in-process); its metrics.csv is read as written, the panels are read back
from the matplotlib Figure (titles, lines, legends, positions) and the page is parsed.
"""

from __future__ import annotations

import csv
import math
from html.parser import HTMLParser
from pathlib import Path

import pytest
from test_language_models import SMALL, write_book

import nnexp
from conftest import write_fish_csv
from nnexp.diagnostics import probe
from nnexp.look import curve_panels
from nnexp.look.page import run_page
from nnexp.look.plots import learning_curves_figure

GRAD_TITLE, DEAD_TITLE, LR_TITLE = (curve_panels.TITLES[key] for key in ("grad_norm/", "dead_relu/", "lr"))
# a deep MLP (8 hidden layers: more than a panel names), a step schedule that changes the rate every epoch,
# and two findings: dead-relu declared expected, vanishing-gradients not
CLASSIFIER = (
    "trainer.epochs=2",
    "trainer.max_batches_per_epoch=3",
    "model.hidden=[32,32,32,32,32,32,32,32]",
    "model.dropout=0",
    "scheduler=step",
    "scheduler.step_size=1",
    "diagnostics.dead_relu_share=0.01",
    "diagnostics.gradient_ratio=1.5",
    "diagnostics.expect=[dead-relu]",
)


def columns_of(run: Path) -> dict[str, list[float]]:
    with open(run / "metrics.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    return {name: [float(row[name]) if row[name] else math.nan for row in rows] for name in rows[0]}


def titles(figure) -> list[str]:
    return [axis.get_title() for axis in figure.axes]


def curves(axis) -> list:
    """A panel's data lines, not its references (axhline: 2 points at x = 0 and 1 in axes coordinates)."""
    return [line for line in axis.get_lines() if list(line.get_xdata()) != [0, 1]]


def assert_no_panel_twice(figure) -> None:
    """No two panels draw the same series (a loss panel beside an mse panel that is the loss, say)."""
    panels = [
        tuple(sorted(tuple(round(float(y), 9) for y in line.get_ydata()) for line in curves(axis)))
        for axis in figure.axes
    ]
    assert len(panels) == len(set(panels)), titles(figure)


@pytest.fixture
def classifier(session_runs) -> Path:
    return session_runs(*CLASSIFIER)


def test_the_probe_and_the_panels_name_the_same_columns():
    assert (curve_panels.GRAD_NORM, curve_panels.DEAD_RELU) == (probe.GRAD_NORM, probe.DEAD_RELU)


def test_a_classifier_draws_its_curves_over_the_gradient_norms_dead_relus_and_schedule(classifier):
    metrics = columns_of(classifier)
    figure = learning_curves_figure(classifier)
    norms_recorded = [name for name in metrics if name.startswith("grad_norm/")]
    dead_recorded = [name for name in metrics if name.startswith("dead_relu/")]
    assert len(norms_recorded) == 9 and len(dead_recorded) == 8  # 9 Linear layers, 8 ReLUs
    assert titles(figure) == [
        "loss",
        "accuracy",
        f"{GRAD_TITLE} (6 of 9)",
        f"{DEAD_TITLE} (6 of 8)",
        LR_TITLE,
    ]
    loss, accuracy, norms, dead, rate = figure.axes
    assert loss.get_position().y0 > norms.get_position().y1  # the curves' row over the inside of the network
    assert len({round(axis.get_position().y0, 6) for axis in (norms, dead, rate)}) == 1  # one row
    # the first and last layer always among the six; each line is metrics.csv's own column, named by its layer
    for axis, recorded, prefix in (
        (norms, norms_recorded, "grad_norm/"),
        (dead, dead_recorded, "dead_relu/"),
    ):
        lines = {line.get_label(): list(line.get_ydata()) for line in curves(axis)}
        assert len(lines) == 6 and {recorded[0], recorded[-1]} <= {prefix + name for name in lines}
        for name, values in lines.items():
            assert values == pytest.approx(metrics[prefix + name])
        assert [text.get_text() for text in axis.get_legend().get_texts()] == list(lines)
    assert dead.get_ylim()[0] == 0  # a share, from none
    [schedule] = curves(rate)
    assert list(schedule.get_ydata()) == pytest.approx(metrics["lr"]) == [1e-3, 1e-4]  # StepLR, gamma 0.1
    assert_no_panel_twice(figure)


def test_a_constant_learning_rate_gets_no_panel_and_bare_curves_stay_as_they_were(classifier, tmp_path):
    metrics = columns_of(classifier)
    for dropped in (["lr"], ["lr", *(name for name in metrics if "/" in name)]):
        kept = [name for name in metrics if name not in dropped]
        folder = tmp_path / f"run{len(dropped)}"
        folder.mkdir()
        with open(folder / "metrics.csv", "w", newline="") as file:  # the run's own rows, columns left out
            writer = csv.writer(file)
            writer.writerow(kept)
            writer.writerows(zip(*(metrics[name] for name in kept), strict=True))
        shown = titles(learning_curves_figure(folder))
        assert LR_TITLE not in shown
        assert shown[:2] == ["loss", "accuracy"] and len(shown) == (4 if dropped == ["lr"] else 2)


def test_a_regression_trained_on_its_mse_draws_one_metric_panel_and_uses_the_space(tmp_path):
    fish = write_fish_csv(tmp_path / "Fish.csv")
    run = nnexp.run(
        ["experiment=fish_linreg", f"data.path={fish}", "trainer.epochs=3"], output_dir=tmp_path / "r"
    )
    assert run.status == "completed"
    metrics = columns_of(run.run_dir)
    assert metrics["train_loss"] == pytest.approx(metrics["train_mse"])  # the loss is the metric
    figure = learning_curves_figure(run.run_dir)
    assert titles(figure) == ["mse (the loss), one panel", GRAD_TITLE, LR_TITLE]  # cosine: the rate falls
    assert len({round(axis.get_position().y0, 6) for axis in figure.axes}) == 1  # one row
    [weights] = curves(figure.axes[1])
    assert list(weights.get_ydata()) == pytest.approx(metrics[f"grad_norm/{weights.get_label()}"])
    assert_no_panel_twice(figure)


def test_a_language_model_draws_perplexity_once_beside_its_layers_gradient_norms(tmp_path):
    book = write_book(tmp_path / "book.txt")
    overrides = ["experiment=time_machine_gru", f"data.path={book}", *SMALL, "generation.every=1"]
    run = nnexp.run(overrides, output_dir=tmp_path / "run")
    assert run.status == "completed"
    metrics = columns_of(run.run_dir)
    figure = learning_curves_figure(run.run_dir)
    shown = titles(figure)
    assert shown[:2] == ["perplexity = exp(loss), so no loss panel", GRAD_TITLE]
    assert "loss" not in shown and len(shown) == 2 + (len(set(metrics["lr"])) > 1)
    layers = [line.get_label() for line in curves(figure.axes[1])]
    assert [f"grad_norm/{name}" for name in layers] == [
        name for name in metrics if name.startswith("grad_norm/")
    ]
    assert_no_panel_twice(figure)


class Rows(HTMLParser):
    """The diagnostics table's rows: (the row's class, its cells' text)."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: list[tuple[str, list[str]]] = []
        self.inside = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "table":
            self.inside = attributes.get("class") == "findings"
        elif tag == "tr" and self.inside:
            self.rows.append((attributes.get("class") or "", []))
        elif tag == "td" and self.inside:
            self.rows[-1][1].append("")

    def handle_endtag(self, tag):
        if tag == "table":
            self.inside = False

    def handle_data(self, data):
        if self.inside and self.rows and self.rows[-1][1]:
            self.rows[-1][1][-1] += data


def test_the_page_marks_a_presets_expected_finding_apart_from_a_real_problem(classifier):
    page = run_page(classifier)
    rows = [(kind, cells) for kind, cells in Rows(page).rows if cells]
    codes = {cells[0]: kind for kind, cells in rows}
    assert codes == {"dead-relu (expected)": "finding-expected", "vanishing-gradients": "finding-problem"}
    assert {cells[1] for _, cells in rows} == {"before training"}  # as the console says when, not "-"
    assert "diagnostics.expect" in page and "not a mistake to fix" in page
    # both kinds look different: each class has its own rule in the page's one style sheet
    assert "tr.finding-expected td {" in page and "tr.finding-problem td:first-child {" in page


def test_a_page_with_no_expected_finding_says_nothing_of_expectations(classifier, tmp_path):
    import json

    from conftest import copy_run

    run = copy_run(classifier, tmp_path / "run")
    summary = json.loads((run / "summary.json").read_text())
    for finding in summary["diagnostics"]:
        finding["expected"] = "true"  # a damaged summary's string is no declaration
    (run / "summary.json").write_text(json.dumps(summary))
    page = run_page(run)
    assert {kind for kind, cells in Rows(page).rows if cells} == {"finding-problem"}
    assert "not a mistake to fix" not in page
