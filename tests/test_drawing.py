"""The pictures come off the critical path (issue 28): a run writes its results (the results table,
summary.json) before it draws a picture, draws each picture once with matplotlib's object API (no pyplot),
times them into summary.json's `pictures_time_s`, and a stop while it draws leaves a folder whose records
are whole.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

import nnexp
from conftest import compose_config, read_summary
from nnexp.look import canvas, figures
from nnexp.look.end_of_run import DRAWN
from nnexp.runs.resume import resume_config
from nnexp.runs.run import run
from nnexp.stop import TrainingInterrupted

QUICK = ("trainer.epochs=1", "device=cpu")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_the_results_are_written_before_the_first_picture_and_the_pictures_are_timed(
    tmp_path, monkeypatch, drawn_here
):
    seen_at_first_picture: list[dict] = []
    save_png = canvas.save_png

    def watched(figure, path, *args):
        if not seen_at_first_picture:
            seen_at_first_picture.append(json.loads((Path(path).parent / "summary.json").read_text()))
        return save_png(figure, path, *args)

    monkeypatch.setattr(canvas, "save_png", watched)
    monkeypatch.setattr(figures, "save_png", watched)
    result = run(compose_config(*QUICK), tmp_path, end=DRAWN)
    first = seen_at_first_picture[0]
    assert first["status"] == "completed" and first["metrics"]["final"]["test_accuracy"] > 0
    assert "per_class" in first and "checkpoint" in first and "pictures_time_s" not in first
    summary = read_summary(tmp_path)
    assert summary["metrics"] == first["metrics"]
    assert 0 < summary["pictures_time_s"] < summary["wall_time_s"] == result.summary["wall_time_s"]
    for name in ("confusion_matrix.png", "learning_curves.png", "predictions.png", "weights.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG_SIGNATURE


def test_a_stop_while_the_pictures_are_drawn_leaves_a_completed_run_that_resume_gives_its_page(
    tmp_path, monkeypatch
):
    """A Ctrl-C as the second picture is drawn: the run stops at once, its records are whole (summary
    completed, checkpoint, the first picture), nothing is half-written; a resume adds the page."""

    def interrupted(*_args, **_kwargs):
        raise TrainingInterrupted(signal.SIGINT)

    monkeypatch.setattr(figures, "save_image_grid", interrupted)  # predictions.png, after the matrix
    with pytest.raises(TrainingInterrupted):
        nnexp.run(list(QUICK), output_dir=tmp_path)
    summary = read_summary(tmp_path)
    assert summary["status"] == "completed" and (tmp_path / summary["checkpoint"]).is_file()
    assert (tmp_path / "confusion_matrix.png").read_bytes()[:8] == PNG_SIGNATURE
    assert not (tmp_path / "predictions.png").exists() and not (tmp_path / "report.html").exists()
    assert not list(tmp_path.glob(".*.tmp"))  # every file whole or absent
    monkeypatch.undo()
    folder, cfg = resume_config([f"resume={tmp_path}"])
    again = run(cfg, folder, resume=True, end=DRAWN)
    assert again.status == "completed" and (tmp_path / "report.html").is_file()


def test_a_stop_asked_for_after_the_last_batch_stops_the_run_before_its_pictures(tmp_path, monkeypatch):
    """Ctrl-C as the results table is printed (after the last batch boundary, while the run still trains
    by its state): the run is complete, so it stops as it would while drawing, with nothing drawn."""
    import nnexp.runs.run as runner

    table = runner.results_table

    def a_ctrl_c_as_it_prints(*args):
        signal.raise_signal(signal.SIGINT)  # noted, as during training: the stop comes at the boundary
        return table(*args)

    monkeypatch.setattr(runner, "results_table", a_ctrl_c_as_it_prints)
    with pytest.raises(TrainingInterrupted) as stopped:
        nnexp.run(list(QUICK), output_dir=tmp_path)
    assert stopped.value.exit_code == 130
    summary = read_summary(tmp_path)
    assert summary["status"] == "completed" and (tmp_path / summary["checkpoint"]).is_file()
    assert not list(tmp_path.glob("*.png")) and not (tmp_path / "report.html").exists()


def test_a_figure_has_its_own_canvas_and_is_drawn_once_into_the_file(tmp_path):
    figure = canvas.new_figure(figsize=(2, 1))
    figure.add_subplot().plot([0, 1], [1, 0])
    written = canvas.save_png(figure, tmp_path / "line.png")
    assert written.read_bytes() == canvas.png_bytes(figure)  # the same picture, whole
    assert type(figure.canvas).__name__ == "FigureCanvasAgg"
    assert not list(tmp_path.glob(".*.tmp"))


# ---- Hydra's start-up: one compose fewer --------------------------------------------------------------


def test_hydra_is_told_the_mode_the_preflight_found_once_and_composes_anything_else_itself(monkeypatch):
    """`nnexp` composes a single run's config twice (the preflight, then Hydra's run), not three times:
    Hydra's get_mode, a whole compose to read `hydra.mode`, gets the preflight's answer for its overrides."""
    from hydra._internal.hydra import Hydra
    from hydra.types import RunMode

    from nnexp.cli import command
    from nnexp.cli.preflight import preflight

    composed = []
    monkeypatch.setattr(Hydra, "get_mode", lambda self, config_name, overrides: composed.append(overrides))
    assert preflight(["trainer.epochs=1"]).hydra.mode is None  # the single run's config, Hydra's node kept
    assert preflight(["experiment=compare_optimizers"]).hydra.mode == RunMode.MULTIRUN  # a preset that sweeps
    command._answer_hydras_mode(["trainer.epochs=1"], None)
    assert Hydra.get_mode(None, config_name="config", overrides=["trainer.epochs=1"]) is None
    assert composed == []  # answered without composing
    Hydra.get_mode(None, config_name="config", overrides=["trainer.epochs=1"])
    command._answer_hydras_mode(["trainer.epochs=1"], None)
    Hydra.get_mode(None, config_name="config", overrides=["trainer.epochs=2"])
    assert composed == [["trainer.epochs=1"], ["trainer.epochs=2"]]  # once only; other overrides: Hydra's


@pytest.mark.parametrize(
    "sweep",
    [
        ["experiment=digits_mlp", "seed=0,1,2"],  # values: the first job's mode is the sweep's
        ["hparams_search=digits_optuna", "seed=1,2"],  # a search preset: MULTIRUN from its config
        ["experiment=compare_optimizers"],  # a preset that sweeps without -m
    ],
)
def test_a_sweeps_preflight_answers_the_mode_hydra_would_compose_for_it(sweep):
    """A sweep's command line is composed whole once more by Hydra only to read its mode: the preflight's
    first job has the same, unless a group's option is swept (Hydra's compose of `optim=sgd,adam`
    fails, and the mode it then finds is none: the preflight leaves that to Hydra)."""
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra._internal.hydra import Hydra
    from hydra._internal.utils import create_config_search_path

    from nnexp.cli.preflight import preflight
    from nnexp.paths import CONFIG_DIR

    loader = ConfigLoaderImpl(config_search_path=create_config_search_path(str(CONFIG_DIR)))
    hydra = Hydra(task_name="nnexp", config_loader=loader)  # not made global: as the command's would be
    first = preflight(sweep, multirun=True)
    assert first is not None and first.hydra.mode == hydra.get_mode(config_name="config", overrides=sweep)
    assert preflight(["optim=sgd,adam", "seed=0,1"], multirun=True) is None
