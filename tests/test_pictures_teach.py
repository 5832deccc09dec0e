"""Pictures that teach (issue 26): every figure and page says what ran, and the curves show their references.

A slide copied out of a run folder must name the experiment, the overrides that differ from the defaults
and the seed, never the folder's clock time; in a sweep, the swept values lead. The curves carry chance and
the classical baseline as labelled dashed lines, accuracy on [0, 1], and no panel repeats another. What is
drawn is read back from matplotlib's Figure objects; pages are parsed.
"""

from __future__ import annotations

import csv
import json
import math
import shlex
from html.parser import HTMLParser
from pathlib import Path

import matplotlib.pyplot as plt
import pytest
import yaml

import nnexp
from conftest import copy_run
from nnexp.look import canvas
from nnexp.look.page import run_page
from nnexp.look.plots import learning_curves_figure
from nnexp.look.what_ran import what_ran

LECTURE_RUN = ("experiment=digits_mlp", "trainer.epochs=2")
PROJECTOR_PT = 12  # the smallest title a hall can read


@pytest.fixture
def lecture_run(session_runs, tmp_path) -> Path:
    return copy_run(session_runs(*LECTURE_RUN), tmp_path / "outputs" / "2026-01-01" / "03-51-54")


def headline(figure) -> str:
    return figure.get_suptitle().replace("\n", " ")


def suptitle_text(figure):
    return figure._suptitle  # the Text object of the figure's title, to read its size and how it is drawn


def drawn_literally(text) -> bool:
    return text.get_parse_math() is False and text.get_usetex() is False


def reference_lines(axis) -> dict[str, float]:
    """{label: y} of the horizontal dashed lines: the references, told apart from curves by having 2 points
    at x = 0 and 1 in axes coordinates."""
    return {
        line.get_label(): line.get_ydata()[0]
        for line in axis.get_lines()
        if line.get_linestyle() == "--" and list(line.get_xdata()) == [0, 1]
    }


# ---- say what ran ------------------------------------------------------------------------------------


def test_the_learning_curves_are_titled_with_the_preset_its_overrides_and_seed_not_the_clock(lecture_run):
    figure = learning_curves_figure(lecture_run)
    title = headline(figure)
    assert title.startswith("digits_mlp: trainer.epochs=2") and "seed 0" in title
    assert "03-51-54" not in title
    assert suptitle_text(figure).get_fontsize() >= PROJECTOR_PT + 2
    assert all(axis.title.get_fontsize() >= PROJECTOR_PT for axis in figure.axes)
    plt.close(figure)


def test_a_run_with_no_preset_is_named_by_its_model_data_and_optimiser(lecture_run):
    (lecture_run / ".hydra" / "overrides.yaml").write_text("- trainer.epochs=2\n- optim.lr=0.01\n")
    assert (
        what_ran(lecture_run).headline == "MLP on digits with Adam: trainer.epochs=2 optim.lr=0.01 · seed 0"
    )
    (lecture_run / ".hydra" / "overrides.yaml").write_text("[]\n")
    assert what_ran(lecture_run).headline == "MLP on digits with Adam (defaults) · seed 0"


def test_a_sweep_jobs_pictures_lead_with_its_swept_values_not_its_job_number(lecture_run, tmp_path):
    sweep = tmp_path / "multirun" / "2026-01-01" / "10-00-00"
    job = copy_run(lecture_run, sweep / "3")
    typed = ["experiment=digits_mlp", "optim.lr=0.1,0.01", "trainer.epochs=2", "hydra.sweep.dir=x"]
    (sweep / "multirun.yaml").write_text(yaml.safe_dump({"hydra": {"overrides": {"task": typed}}}))
    (job / ".hydra" / "overrides.yaml").write_text(
        yaml.safe_dump(["experiment=digits_mlp", "optim.lr=0.1", "trainer.epochs=2"])
    )
    figure = learning_curves_figure(job)
    assert headline(figure) == "digits_mlp: optim.lr=0.1 trainer.epochs=2 · seed 0"
    plt.close(figure)


def test_every_view_a_run_draws_is_titled_with_what_ran_at_a_projectors_size(
    tmp_path, monkeypatch, drawn_here
):
    drawn = []
    png_bytes = canvas.png_bytes
    monkeypatch.setattr(canvas, "png_bytes", lambda figure, *args: drawn.append(figure) or png_bytes(figure))
    result = nnexp.run(["experiment=digits_mlp", "trainer.epochs=1", "seed=3"], output_dir=tmp_path / "run")
    assert result.status == "completed"
    titles = {headline(figure) for figure in drawn}
    # learning_curves, confusion matrix, predictions, top losses, weights, activations
    assert len(drawn) == 6, titles
    layers = [figure for figure in drawn if "each layer's outputs" in headline(figure)]
    assert len(layers) == 1 and len(layers[0].axes) == 3, titles  # Linear, ReLU, Linear: a panel each
    for figure in drawn:
        assert headline(figure).startswith("digits_mlp: trainer.epochs=1 seed=3"), headline(figure)
        text = suptitle_text(figure)
        assert text.get_fontsize() >= PROJECTOR_PT and drawn_literally(text)
        if figure in layers:  # small multiples: a layer's name and numbers over each of its histograms
            continue
        assert all(axis.title.get_fontsize() >= PROJECTOR_PT for axis in figure.axes if axis.get_title())


def test_a_dollar_or_tex_in_an_override_is_drawn_as_typed_never_as_math(lecture_run):
    odd = "note=$\\frac{$ <b>x</b>"
    (lecture_run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(["experiment=digits_mlp", odd]))
    figure = learning_curves_figure(lecture_run)
    assert odd in headline(figure) and drawn_literally(suptitle_text(figure))
    figure.canvas.draw()  # TeX would have raised on the unbalanced formula
    plt.close(figure)


class Page(HTMLParser):
    """The page's title, its first h1's text, and its text and tags in the order they come."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.order: list[tuple[str, str]] = []  # ("tag", name) or ("text", data)
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.order.append(("tag", tag))

    def handle_data(self, data):
        self.order.append(("text", data))

    def text_after(self, tag: str) -> str:
        at = self.order.index(("tag", tag))
        return next(data for kind, data in self.order[at + 1 :] if kind == "text")

    def position(self, wanted: str) -> int:
        return next(i for i, (kind, data) in enumerate(self.order) if kind == "text" and wanted in data)


def test_the_run_page_opens_with_what_ran_its_command_lr_and_batch_size_before_any_picture(lecture_run):
    page = Page(run_page(lecture_run))
    config = yaml.safe_load((lecture_run / ".hydra" / "config.yaml").read_text())
    assert page.text_after("title").startswith("digits_mlp: trainer.epochs=2")
    assert page.text_after("h1").startswith("digits_mlp: trainer.epochs=2 · seed 0")
    command = page.position("command:")
    assert page.order[command + 2] == ("text", "nnexp experiment=digits_mlp trainer.epochs=2")  # in <code>
    settings = page.position(f"lr {config['optim']['lr']} · batch size {config['trainer']['batch_size']}")
    first_picture = page.order.index(("tag", "img"))
    assert command < settings < first_picture


def test_the_command_on_the_page_is_one_a_shell_runs_as_typed(lecture_run):
    typed = ["experiment=digits_mlp", "model.hidden=[32,16]", "+note=a b", "hydra.run.dir=somewhere"]
    (lecture_run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(typed))
    command = what_ran(lecture_run).command
    assert shlex.split(command) == ["nnexp", *typed[:3]]  # Hydra's own folder setting is left out


# ---- references and honest axes ----------------------------------------------------------------------


def test_accuracy_is_drawn_on_0_to_1_with_chance_and_logistic_regression_as_labelled_dashed_lines(
    lecture_run,
):
    summary = json.loads((lecture_run / "summary.json").read_text())
    [logistic] = [b for b in summary["baselines"] if b["name"].startswith("logistic")]
    figure = learning_curves_figure(lecture_run)
    axes = {axis.get_title(): axis for axis in figure.axes}
    accuracy, loss = axes["accuracy"], axes["loss"]
    assert accuracy.get_ylim() == (0, 1)
    lines = reference_lines(accuracy)
    assert lines["chance (val): 0.1"] == pytest.approx(0.1)
    assert lines[f"logistic regression (val): {logistic['val_accuracy']:.3g}"] == logistic["val_accuracy"]
    loss_lines = reference_lines(loss)
    assert loss_lines["chance (val): 2.3"] == pytest.approx(math.log(10))
    assert any(label.startswith("logistic regression") for label in loss_lines)
    legend = [text.get_text() for text in accuracy.get_legend().get_texts()]
    assert set(lines) <= set(legend) and "val" in legend
    plt.close(figure)


def write_metrics(run: Path, rows: list[dict[str, float]]) -> None:
    with (run / "metrics.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def bare_run(folder: Path, summary: dict, rows: list[dict[str, float]]) -> Path:
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text("- trainer.epochs=3\n")
    (folder / "summary.json").write_text(json.dumps(summary))
    write_metrics(folder, rows)
    return folder


def test_chance_is_one_over_the_classes_even_where_no_baseline_was_recorded(tmp_path):
    summary = {"data": {"task": "classification", "num_outputs": 4}}
    rows = [{"epoch": e, "train_loss": 1.3, "train_accuracy": 0.26, "val_loss": 1.4, "val_accuracy": 0.25}
            for e in (1, 2, 3)]  # fmt: skip
    figure = learning_curves_figure(bare_run(tmp_path / "run", summary, rows))
    [accuracy] = [axis for axis in figure.axes if axis.get_title() == "accuracy"]
    assert reference_lines(accuracy) == {"chance (1/4): 0.25": 0.25}
    assert accuracy.get_ylim() == (0, 1)  # a curve at chance stays at chance's height, not a wobble
    plt.close(figure)


def test_a_language_model_draws_perplexity_once_with_the_unigram_and_uniform_lines(tmp_path):
    summary = {"baselines": [{"name": "uniform", "val_loss": math.log(28), "val_perplexity": 28.0},
                             {"name": "unigram", "val_loss": 2.8, "val_perplexity": 16.4}]}  # fmt: skip
    rows = [{"epoch": e, "train_loss": 3 / e, "train_perplexity": math.exp(3 / e),
             "val_loss": 3.1 / e, "val_perplexity": math.exp(3.1 / e)} for e in (1, 2, 3)]  # fmt: skip
    figure = learning_curves_figure(bare_run(tmp_path / "run", summary, rows))
    [axis] = figure.axes
    assert "perplexity" in axis.get_title() and "exp(loss)" in axis.get_title()  # says why one panel
    assert reference_lines(axis) == {"uniform (val): 28": 28.0, "unigram (val): 16.4": 16.4}
    plt.close(figure)


def regression_rows(mse_factor: float) -> list[dict[str, float]]:
    return [{"epoch": e, "train_loss": 1 / e, "train_mse": mse_factor / e,
             "val_loss": 1.2 / e, "val_mse": 1.2 * mse_factor / e}
            for e in (1, 2, 3)]  # fmt: skip


def test_a_regression_trained_on_mse_draws_one_panel_with_least_squares_and_the_mean(tmp_path):
    summary = {"baselines": [{"name": "least squares (closed form)", "val_mse": 0.3, "test_mse": 0.31},
                             {"name": "mean predictor", "val_mse": 1.0}]}  # fmt: skip
    figure = learning_curves_figure(bare_run(tmp_path / "run", summary, regression_rows(1.0)))
    [axis] = figure.axes
    assert axis.get_title() == "mse (the loss), one panel"
    assert reference_lines(axis) == {
        "mean predictor (val): 1": 1.0,
        "least squares (closed form) (val): 0.3": 0.3,
    }
    plt.close(figure)


def test_a_loss_that_is_not_the_mse_keeps_both_panels(tmp_path):
    figure = learning_curves_figure(bare_run(tmp_path / "run", {}, regression_rows(2.0)))
    assert [axis.get_title() for axis in figure.axes] == ["loss", "mse"]
    plt.close(figure)


def test_a_reference_a_folder_could_not_mean_is_left_out_and_its_name_is_drawn_as_typed(tmp_path):
    chance = {"name": "chance", "val_accuracy": 7.0, "test_accuracy": "x", "val_loss": math.inf}
    summary = {"baselines": [chance, {"name": "logistic regression $\\frac{$", "val_accuracy": 0.9}]}
    rows = [{"epoch": e, "train_loss": 1.0, "train_accuracy": 0.5, "val_loss": 1.0, "val_accuracy": 0.5}
            for e in (1, 2)]  # fmt: skip
    figure = learning_curves_figure(bare_run(tmp_path / "run", summary, rows))
    loss, accuracy = figure.axes
    assert reference_lines(loss) == {}  # an infinite loss is no line
    assert reference_lines(accuracy) == {"logistic regression $\\frac{$ (val): 0.9": 0.9}  # 7 is no accuracy
    assert all(drawn_literally(text) for text in accuracy.get_legend().get_texts())
    figure.canvas.draw()  # TeX would have raised on the unbalanced formula
    plt.close(figure)


# ---- the front door ------------------------------------------------------------------------------------


def test_help_describes_every_preset_in_one_line_from_its_header():
    from nnexp.cli.usage import config_groups, help_text, preset_descriptions
    from nnexp.paths import CONFIG_DIR

    presets = preset_descriptions(CONFIG_DIR)
    assert list(presets) == config_groups(CONFIG_DIR)["experiment"]
    for name, description in presets.items():
        assert len(description) > 10 and not description.startswith(("Seed ", "@package", "nnexp ")), name
    assert presets["compare_activations"] == (
        "Sigmoid vs tanh vs ReLU: the digits MLP 64-128-10 trained three times, only the activation changed "
        "(Adam, lr 0.001, 20 epochs of batch 64)"  # the first sentence, its full stop left off
    )
    assert (
        presets["lectures/gp_linear"] == "Linear(1,1): a straight line through a curve"
    )  # past its citation
    lines = help_text(CONFIG_DIR).splitlines()
    for name in presets:
        [line] = [line for line in lines if line.startswith(f"  {name} ")]
        assert len(line) <= 100 and presets[name][:20] in line
