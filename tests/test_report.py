"""nnexp-report on run folders written here by hand: which rows, which columns, in which order."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nnexp.look.plots import overlay_figure, save_learning_curves
from nnexp.look.report import main, run_record, strongest_baseline

PNG = b"\x89PNG\r\n\x1a\n"


def fake_run(folder: Path, overrides: list[str], val_accuracy: float, status: str = "completed") -> Path:
    """A run folder as nnexp writes it: overrides, summary.json and a metrics.csv of three epochs."""
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text("".join(f"- {line}\n" for line in overrides))
    rows = [
        {"epoch": epoch, "train_loss": 1 / epoch, "train_accuracy": val_accuracy - 0.1 / epoch,
         "val_loss": 1.2 / epoch, "val_accuracy": val_accuracy - 0.1 / epoch, "lr": 0.01, "seconds": 0.1}
        for epoch in (1, 2, 3)
    ]  # fmt: skip
    with (folder / "metrics.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    final = {"val_accuracy": val_accuracy - 0.1 / 3, "test_accuracy": val_accuracy - 0.05, "val_loss": 0.4}
    best = {"val_accuracy": val_accuracy - 0.1 / 3, "val_loss": 0.4}
    summary = {
        "status": status,
        "epochs_completed": 3,
        "wall_time_s": 2.5,
        "metrics": {"final": final, "best": best},
    }
    (folder / "summary.json").write_text(json.dumps(summary))
    return folder


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    root = tmp_path / "outputs" / "multirun" / "2026-01-01" / "10-00-00"
    points = [("sgd", 0, 0.80), ("sgd", 1, 0.84), ("adam", 0, 0.95), ("adam", 1, 0.97)]
    for index, (optim, seed, accuracy) in enumerate(points):
        fake_run(root / str(index), [f"optim={optim}", f"seed={seed}", "trainer.epochs=3"], accuracy)
    return root


def read_csv(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(path.open()))


def test_one_row_per_run_with_only_the_differing_overrides_sorted_by_the_metric(sweep, capsys):
    assert main([str(sweep)]) == 0
    rows = read_csv(sweep / "report.csv")
    assert [(row["optim"], row["seed"]) for row in rows] == [
        ("adam", "1"),
        ("adam", "0"),
        ("sgd", "1"),
        ("sgd", "0"),
    ]
    assert "trainer.epochs" not in rows[0]
    assert rows[0]["status"] == "completed" and rows[0]["epochs"] == "3" and rows[0]["wall_s"] == "2.5"
    assert float(rows[0]["best_val_accuracy"]) == pytest.approx(0.97 - 0.1 / 3)
    shown = capsys.readouterr().out
    assert "4 runs, sorted by val_accuracy" in shown and "adam" in shown


def test_a_loss_sorts_ascending_and_any_nesting_is_found(sweep, tmp_path):
    other = fake_run(tmp_path / "outputs" / "2026-01-02" / "09-00-00", ["optim=adamw"], 0.5)
    out = tmp_path / "table.csv"
    assert main([str(tmp_path / "outputs"), "--sort", "test_accuracy", "--csv", str(out)]) == 0
    rows = read_csv(out)
    assert len(rows) == 5 and rows[-1]["optim"] == "adamw"
    assert other.name in rows[-1]["run"]
    assert main([str(tmp_path / "outputs"), "--sort", "val_loss", "--csv", str(out)]) == 0
    losses = [float(row["val_loss"]) for row in read_csv(out)]
    assert losses == sorted(losses)


def test_group_by_averages_over_seeds_with_the_standard_deviation(sweep, capsys):
    assert main([str(sweep), "--group-by"]) == 0
    rows = {row["optim"]: row for row in read_csv(sweep / "report.csv")}
    assert set(rows) == {"sgd", "adam"} and rows["adam"]["runs"] == "2"
    adam = [0.95 - 0.1 / 3, 0.97 - 0.1 / 3]
    assert float(rows["adam"]["val_accuracy"]) == pytest.approx(sum(adam) / 2)
    assert float(rows["adam"]["val_accuracy_std"]) == pytest.approx(math.sqrt(2) * 0.01)
    assert "±" in capsys.readouterr().out


def test_a_failed_run_is_a_row_with_its_status(sweep):
    broken = sweep / "4"
    (broken / ".hydra").mkdir(parents=True)
    (broken / ".hydra" / "overrides.yaml").write_text("- optim=rmsprop\n- seed=0\n- trainer.epochs=3\n")
    assert main([str(sweep)]) == 0
    rows = read_csv(sweep / "report.csv")
    assert (
        rows[-1]["optim"] == "rmsprop" and rows[-1]["status"] == "failed" and rows[-1]["val_accuracy"] == ""
    )


def test_plot_overlays_every_run_in_one_png(sweep, tmp_path):
    target = tmp_path / "curves.png"
    assert main([str(sweep), "--plot", str(target)]) == 0
    assert target.read_bytes()[:8] == PNG


def test_a_run_folder_gets_its_learning_curves(tmp_path):
    run = fake_run(tmp_path / "run", ["seed=0"], 0.9)
    path = save_learning_curves(run)
    assert path == run / "learning_curves.png" and path.read_bytes()[:8] == PNG


def test_a_path_without_runs_is_an_error(tmp_path, capsys):
    assert main([str(tmp_path)]) == 2
    assert "no run folders" in capsys.readouterr().err
    assert main([str(tmp_path / "nowhere")]) == 2


def add_to_summary(run: Path, **entries) -> None:
    summary = json.loads((run / "summary.json").read_text())
    (run / "summary.json").write_text(json.dumps({**summary, **entries}))


def test_each_run_shows_its_strongest_baseline_with_its_name(sweep, capsys):
    baselines = [
        {"name": "chance", "val_accuracy": 0.1, "test_accuracy": 0.1},
        {"name": "logistic regression", "val_accuracy": 0.965, "test_accuracy": 0.972},
    ]
    for run in sweep.iterdir():
        add_to_summary(run, baselines=baselines)
    assert main([str(sweep)]) == 0
    rows = read_csv(sweep / "report.csv")
    shown_baselines = {(row["baseline"], row["baseline_test_accuracy"]) for row in rows}
    assert shown_baselines == {("logistic regression", "0.972")}
    assert "logistic regression" in capsys.readouterr().out
    assert main([str(sweep), "--group-by"]) == 0
    assert {row["baseline"] for row in read_csv(sweep / "report.csv")} == {"logistic regression"}


def test_the_strongest_baseline_is_the_lowest_for_errors_and_perplexities_on_test_else_val():
    language_model = [{"name": "uniform", "val_perplexity": 28}, {"name": "unigram", "val_perplexity": 17.5}]
    assert strongest_baseline(language_model) == {"baseline": "unigram", "baseline_val_perplexity": 17.5}
    regression = [{"name": "least squares", "test_mse": 0.2}, {"name": "mean predictor", "test_mse": 1.0}]
    assert strongest_baseline(regression) == {"baseline": "least squares", "baseline_test_mse": 0.2}
    assert strongest_baseline([]) == {}


def test_a_run_recorded_with_the_old_single_least_squares_baseline_still_shows_it(tmp_path):
    run = fake_run(tmp_path / "run", ["data=fish"], 0.9)
    add_to_summary(run, baseline={"name": "least squares (closed form)", "test_mse": 0.25, "weights": [1.0]})
    record = run_record(run)
    assert record["baseline"] == "least squares (closed form)" and record["baseline_test_mse"] == 0.25


def test_each_run_lists_the_codes_of_its_learner_diagnostics(sweep, capsys):
    stuck = {"code": "stuck-loss", "message": "m", "hint": "h", "epoch": 7, "expected": False}
    chance = {"code": "chance-level", "message": "m", "hint": "h", "epoch": 5, "expected": False}
    runs = sorted(sweep.iterdir())
    add_to_summary(runs[0], diagnostics=[stuck, chance])
    add_to_summary(runs[1], diagnostics=[chance])
    assert main([str(sweep)]) == 0
    by_run = {row["run"]: row["diagnostics"] for row in read_csv(sweep / "report.csv")}
    assert by_run == {"0": "stuck-loss, chance-level", "1": "chance-level", "2": "", "3": ""}
    assert "stuck-loss, chance-level" in capsys.readouterr().out
    assert main([str(sweep), "--group-by", "optim"]) == 0
    by_optim = {row["optim"]: row["diagnostics"] for row in read_csv(sweep / "report.csv")}
    assert by_optim == {"sgd": "stuck-loss, chance-level", "adam": ""}


def test_damaged_files_of_one_run_are_named_and_do_not_hide_the_others(tmp_path, capsys):
    fake_run(tmp_path / "0", ["optim=sgd"], 0.9)
    truncated = fake_run(tmp_path / "1", ["optim=adam"], 0.95)
    (truncated / "summary.json").write_text('{"status": "compl')  # cut off mid-write
    listed = fake_run(tmp_path / "2", ["optim=rmsprop"], 0.8)
    (listed / "summary.json").write_text("[1, 2]")  # JSON, but not a summary
    garbled = fake_run(tmp_path / "3", ["optim=adagrad"], 0.85)
    (garbled / "metrics.csv").write_bytes(b"\xff\xfe\x00garbage\x00")
    (garbled / ".hydra" / "overrides.yaml").write_text("- optim=[unclosed\n  : :\n\t- x")
    assert main([str(tmp_path), "--plot"]) == 0
    err = capsys.readouterr().err
    assert f"{truncated / 'summary.json'}: cannot be read" in err
    assert f"{listed / 'summary.json'}: cannot be read (a JSON list, not an object)" in err
    assert f"{garbled / '.hydra' / 'overrides.yaml'}: cannot be read" in err
    assert f"{garbled / 'metrics.csv'}: cannot be read" in err
    rows = {row["run"]: row for row in csv.DictReader((tmp_path / "report.csv").open())}
    assert {run: row["status"] for run, row in rows.items()} == {
        "0": "completed", "1": "damaged", "2": "damaged", "3": "completed"
    }  # fmt: skip
    assert (tmp_path / "report.png").read_bytes().startswith(PNG)


def test_a_folder_whose_only_run_is_damaged_is_still_reported(tmp_path, capsys):
    damaged = fake_run(tmp_path / "0", ["optim=sgd"], 0.9)
    (damaged / "summary.json").write_text('{"status": 5, "metrics": "x"}')  # JSON of the wrong shape
    assert main([str(tmp_path)]) == 0
    assert "summary.json: cannot be read" in capsys.readouterr().err
    [row] = csv.DictReader((tmp_path / "report.csv").open())
    assert row["status"] == "damaged"


def test_the_report_in_a_pipe_has_no_line_padded_with_spaces(tmp_path, capsys):
    fake_run(tmp_path / "0", ["optim=sgd"], 0.9)
    fake_run(tmp_path / "1", ["optim=adam"], 0.95)
    assert main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "2 runs, sorted by" in out
    assert [line for line in out.splitlines() if line != line.rstrip()] == []


def test_a_report_it_wrote_is_written_over_but_a_page_it_did_not_write_is_not(sweep, tmp_path, capsys):
    table, page = tmp_path / "table.csv", tmp_path / "page.html"
    assert main([str(sweep), "--csv", str(table), "--html", "--out", str(page)]) == 0
    assert main([str(sweep), "--csv", str(table), "--html", "--out", str(page)]) == 0  # its own: rewritten
    notes = tmp_path / "notes.html"
    notes.write_text("<h1>my notes</h1>")
    capsys.readouterr()
    assert main([str(sweep), "--csv", str(table), "--html", "--out", str(notes)]) == 2
    assert "is not a report nnexp-report wrote" in capsys.readouterr().err
    assert notes.read_text() == "<h1>my notes</h1>"


def test_a_report_on_one_run_folder_writes_nothing_into_it(tmp_path, capsys):
    run = fake_run(tmp_path / "run", ["seed=0"], 0.9)
    before = sorted(path.name for path in run.iterdir())
    assert main([str(run)]) == 0
    assert "table: not written" in capsys.readouterr().out
    assert main([str(run), "--plot"]) == 2
    assert "name the file, as --plot FILE" in capsys.readouterr().err
    assert sorted(path.name for path in run.iterdir()) == before


@pytest.mark.parametrize(
    ("option", "target", "said"),
    [
        ("--csv", "no/such/folder/runs.csv", "does not exist; create it first"),
        ("--plot", "no/such/folder/curves.png", "does not exist; create it first"),
        ("--csv", "outputs/multirun/2026-01-01/10-00-00/0/metrics.csv", "never writes into one"),
        ("--plot", ".", "is a folder; name a file"),
        ("--csv", "outputs/multirun/2026-01-01/10-00-00/ledger.jsonl", "a file nnexp keeps for its runs"),
        ("--csv", "link.csv", "never writes into one"),  # a link to a run's metrics.csv
        ("--csv", "mine.csv", "is not a report nnexp-report wrote"),  # a user's own file is never replaced
        ("--plot", "mine.png", "is not a report nnexp-report wrote"),
    ],
)
def test_an_output_file_that_cannot_be_written_is_refused_before_any_is(sweep, tmp_path, capsys, option,
                                                                         target, said):  # fmt: skip
    (tmp_path / "link.csv").symlink_to(sweep / "0" / "metrics.csv")
    (tmp_path / "mine.csv").write_text("x,y\n1,2\n")
    (tmp_path / "mine.png").write_bytes(b"\x89PNG\r\n\x1a\n my figure")
    before = {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()}
    csv_elsewhere = ["--csv", str(tmp_path / "report.csv")] if option == "--plot" else []
    assert main([str(sweep), *csv_elsewhere, option, str(tmp_path / target)]) == 2
    err = capsys.readouterr().err
    assert said in err and len(err.splitlines()) == 1
    assert {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()} == before
    assert not (tmp_path / "no").exists()


# ---- many runs: the overlay stays legible, and the console hears nnexp, never a library -------------------


def many_runs(root: Path, count: int) -> list[tuple[str, Path]]:
    """`count` runs whose val_accuracy rises with their index; (label, folder), best first."""
    for index in range(count):
        fake_run(root / str(index), [f"optim.lr={index / 1000}", "seed=0"], 0.5 + index / 100)
    return [(f"optim.lr={index / 1000}", root / str(index)) for index in reversed(range(count))]


def test_an_overlay_of_many_runs_names_the_best_eight_and_draws_the_rest_thin_and_grey(tmp_path):
    from matplotlib.collections import LineCollection

    runs = many_runs(tmp_path / "sweep", 30)
    figure = overlay_figure(runs, ranked_by="val_accuracy")
    [legend] = figure.legends
    assert [text.get_text() for text in legend.get_texts()] == [label for label, _ in runs[:8]] + [
        "+22 more in grey"
    ]
    assert legend.get_title().get_text() == "best 8 by val_accuracy"
    figure.canvas.draw()
    for axis in figure.axes:  # loss and accuracy: 8 runs in colour (val, train), 22 grey in one bundle each
        assert len(axis.get_lines()) == 16
        grey = [c for c in axis.collections if isinstance(c, LineCollection)]
        assert [len(bundle.get_segments()) for bundle in grey] == [22, 22]
        assert not legend.get_window_extent().overlaps(axis.get_window_extent())  # beside the plots, never on
    few = overlay_figure(runs[:10])
    assert len(few.legends[0].get_texts()) == 10 and not few.axes[0].collections  # ten: each named


def test_the_report_names_the_best_runs_by_its_sort_column(tmp_path, monkeypatch, capsys):
    import nnexp.look.plots as plots

    named: list[list[str]] = []

    def spy(*args, **kwargs):
        figure = draw(*args, **kwargs)
        named.append([text.get_text() for text in figure.legends[0].get_texts()])
        return figure

    draw = plots.overlay_figure
    monkeypatch.setattr(plots, "overlay_figure", spy)
    runs = many_runs(tmp_path / "sweep", 12)
    assert main([str(tmp_path / "sweep"), "--plot", "--html"]) == 0  # drawn once, for the file and the page
    assert named == [[label for label, _ in runs[:8]] + ["+4 more in grey"]]
    assert main([str(tmp_path / "sweep"), "--plot", "--sort", "val_loss"]) == 0  # all tie: the folders' order
    assert named[-1][:2] == ["optim.lr=0.0", "optim.lr=0.001"]
    assert capsys.readouterr().err == ""


def test_a_report_of_many_runs_prints_nnexps_warnings_never_a_librarys(tmp_path):
    many_runs(tmp_path / "sweep", 30)
    diverged = fake_run(tmp_path / "sweep" / "30", ["optim.lr=3", "seed=0"], 0.1)
    exploded = "epoch,train_loss,val_loss,val_accuracy\n1,2.3,2.3,0.1\n2,1e308,1e308,0.1\n"
    (diverged / "metrics.csv").write_text(exploded)
    command = [sys.executable, "-c", "from nnexp.look.report import console_main; console_main()"]
    done = subprocess.run([*command, str(tmp_path / "sweep"), "--plot", "--html"], capture_output=True,
                          text=True, timeout=300, env={**os.environ, "PYTHONWARNINGS": "always"})  # fmt: skip
    assert done.returncode == 0, done.stderr
    [line] = done.stderr.splitlines()  # one line, in nnexp's words, however often matplotlib warned
    assert line.startswith("nnexp-report: warning: the learning curves were drawn, but may not look right")
    assert "Warning" not in line and ".py" not in line


def test_curves_no_plot_can_scale_to_are_one_warning_and_the_rest_is_written(tmp_path, capsys):
    runs = many_runs(tmp_path / "sweep", 3)
    for _, run in runs:  # a regression: its mse has a linear axis (an accuracy's is fixed at 0 to 1)
        (run / "metrics.csv").write_text("epoch,val_loss,val_mse\n1,1,0.5\n2,1,0.4\n")
    (runs[0][1] / "metrics.csv").write_text("epoch,val_loss,val_mse\n1,1,1e308\n2,1,-1e308\n")
    assert main([str(tmp_path / "sweep"), "--plot", "--html"]) == 0
    out, err = capsys.readouterr()
    [line] = err.splitlines()
    assert line.startswith("nnexp-report: warning: the learning curves could not be drawn")
    assert "plot: not drawn" in out and not (tmp_path / "sweep" / "report.png").exists()
    page = (tmp_path / "sweep" / "report.html").read_text()
    assert "the learning curves could not be drawn" in page and 'id="runs"' in page


def test_names_that_look_like_console_markup_are_shown_as_they_are(tmp_path, capsys):
    fake_run(tmp_path / "[/red]", ["optim=[bold]x"], 0.9)  # rich read these as markup, and raised
    fake_run(tmp_path / "b", ["optim=[link=https://example.com]here[/link]"], 0.8)
    assert main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "[/red]" in out and "[bold]x" in out and "[link=https://example.com]here[/link]" in out


def test_the_report_ranks_metrics_as_training_does_without_importing_torch():
    from nnexp.look.report import HIGHER_IS_BETTER
    from nnexp.train.metrics import HIGHER_IS_BETTER as TRAINING

    assert set(HIGHER_IS_BETTER) == set(TRAINING)
    code = "import sys, nnexp.look.report; print('torch' in sys.modules)"
    imported = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert imported.stdout.strip() == "False", imported.stderr
