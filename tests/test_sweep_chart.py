"""The sweep's views a lecturer projects (issue 26): the chart of each final metric against each swept value,
the table that fits a 1280 px page, and the overlay legible past a handful of runs.

The sweeps are written here in nnexp's on-disk formats (.hydra/overrides.yaml, summary.json, metrics.csv),
and once by real runs of `nnexp.run`; the chart's numbers are read back from the figure and checked against
the summaries, the page is parsed, and laid out by headless Chromium at 1280 px.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import re
import statistics
from pathlib import Path

import pytest
from PIL import Image
from test_page_safety import CHROMIUM, Page, source_of

from nnexp.look.plots import overlay_figure
from nnexp.look.report import collect
from nnexp.look.report import main as report_main
from nnexp.look.sweep_chart import CHART_FILE, axis_scale, chart_figure, sweep_chart

LOGISTIC = {"name": "logistic regression", "val_accuracy": 0.96, "test_accuracy": 0.972}
CHANCE = {"name": "chance", "val_accuracy": 0.1, "test_accuracy": 0.1}


def a_run(
    folder: Path, overrides: list[str], accuracy: float, loss: float, status: str = "completed"
) -> Path:
    """A run folder as nnexp writes it: its overrides, a summary.json and a metrics.csv of three epochs."""
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text("".join(f"- {line}\n" for line in overrides))
    with (folder / "metrics.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "seconds"]
        )
        for epoch in (1, 2, 3):
            train, val = (loss * 2 / epoch, accuracy / epoch), (loss * 3 / epoch, accuracy * epoch / 3)
            writer.writerow([epoch, *train, *val, 0.01, 0.1])
    final = {
        "val_accuracy": accuracy,
        "val_loss": loss,
        "test_accuracy": accuracy - 0.01,
        "test_loss": loss + 0.1,
    }
    summary = {"status": status, "epochs_completed": 3, "wall_time_s": 1.5,
               "data": {"name": "digits", "task": "classification", "num_outputs": 10},
               "metrics": {"final": final, "best": final}, "baselines": [CHANCE, LOGISTIC]}  # fmt: skip
    (folder / "summary.json").write_text(json.dumps(summary))
    return folder


def lr_sweep(root: Path) -> Path:
    """optim.lr=0.001,0.01,0.1 x seed=0,1,2 (jobs 0-8), and a diverged and a failed run at lr=1.0."""
    job = 0
    for lr in ("0.001", "0.01", "0.1"):
        for seed in (0, 1, 2):
            accuracy = {"0.001": 0.6, "0.01": 0.9, "0.1": 0.8}[lr] + 0.02 * seed
            a_run(root / str(job), [f"optim.lr={lr}", f"seed={seed}"], accuracy, 1.0 - accuracy)
            job += 1
    a_run(root / "9", ["optim.lr=1.0", "seed=0"], 0.1, 50.0, status="diverged")
    a_run(root / "10", ["optim.lr=1.0", "seed=1"], 0.1, 2.3, status="failed")
    return root


def final_of(run: Path, metric: str) -> float:
    return json.loads((run / "summary.json").read_text())["metrics"]["final"][metric]


def images_in(page: str) -> list[bytes]:
    return [base64.b64decode(data) for data in re.findall(r'src="data:image/png;base64,([^"]+)"', page)]


def test_the_chart_draws_each_final_metrics_mean_and_range_over_seeds_against_the_swept_value(tmp_path):
    sweep = lr_sweep(tmp_path / "sweep")
    assert report_main([str(sweep), "--html"]) == 0
    table, differing = collect([sweep])
    chart = sweep_chart(table, differing)
    assert [(panel.metric, panel.key, panel.scale) for panel in chart.panels] == [
        ("test_accuracy", "optim.lr", "log"), ("test_loss", "optim.lr", "log")]  # fmt: skip
    for panel in chart.panels:
        [line] = panel.series
        assert line.x == ["0.001", "0.01", "0.1"]  # lr=1.0: no run completed, so no point
        for index, lr in enumerate(line.x):
            jobs = [sweep / str(job) for job in range(9) if (job // 3) == ["0.001", "0.01", "0.1"].index(lr)]
            scores = [final_of(run, panel.metric) for run in jobs]
            assert line.mean[index] == pytest.approx(statistics.mean(scores))
            assert (line.low[index], line.high[index]) == (
                pytest.approx(min(scores)),
                pytest.approx(max(scores)),
            )
            assert line.runs[index] == 3
    assert chart.panels[0].baseline == ("logistic regression", pytest.approx(0.972))
    assert chart.completed == 9 and chart.left_out == [("9", "diverged"), ("10", "failed")]
    assert "2 left out, as they did not complete: 9 (diverged), 10 (failed)" in chart.caption

    # Read back from the figure: the points and bars drawn are those numbers, on a log axis from 0 to 1.
    figure = chart_figure(chart)
    accuracy_axis, loss_axis = figure.axes
    [points, *_] = accuracy_axis.lines
    assert list(points.get_xdata()) == [0.001, 0.01, 0.1]
    assert list(points.get_ydata()) == pytest.approx(chart.panels[0].series[0].mean)
    [bars] = accuracy_axis.collections
    [line] = chart.panels[0].series
    drawn = [tuple(segment[:, 1]) for segment in bars.get_segments()]
    assert drawn == [pytest.approx(bar) for bar in zip(line.low, line.high, strict=True)]
    assert accuracy_axis.get_xscale() == "log" and accuracy_axis.get_ylim()[0] == 0
    assert [tick.get_text() for tick in accuracy_axis.get_xticklabels()] == ["0.001", "0.01", "0.1"]
    assert loss_axis.get_ylabel() == "test_loss"
    [baseline] = accuracy_axis.texts  # named on its dashed line
    assert baseline.get_text() == "logistic regression: 0.972" and baseline.get_fontsize() >= 10
    assert accuracy_axis.get_legend() is None  # one line a panel: nothing to tell apart

    # Written beside the page and embedded in it, with the caption that names the runs left out.
    written = sweep / CHART_FILE
    assert written.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (sweep / "report.html").read_text()
    assert written.read_bytes() in images_in(page)
    assert "9 (diverged), 10 (failed)" in "".join(Page(page).text)


def test_a_value_that_is_not_a_number_is_a_place_in_the_order_swept_and_a_second_key_a_line_each(tmp_path):
    sweep = tmp_path / "sweep"
    # Jobs 2 and 10: numeric job order puts "sgd" (job 2) before "adam" (job 10); text order would not.
    points = {2: ("sgd", "32", 0.8), 3: ("sgd", "64", 0.7), 10: ("adam", "32", 0.95), 11: ("adam", "64", 0.9)}
    for job, (optim, batch, accuracy) in points.items():
        a_run(sweep / str(job), [f"optim={optim}", f"data.batch_size={batch}"], accuracy, 1 - accuracy)
    table, differing = collect([sweep])
    chart = sweep_chart(table, differing)
    by_optim = next(p for p in chart.panels if (p.metric, p.key) == ("test_accuracy", "optim"))
    assert by_optim.scale == "categorical" and by_optim.values == ["sgd", "adam"]
    assert [(line.label, line.mean) for line in by_optim.series] == [
        ("data.batch_size=32", pytest.approx([0.79, 0.94])),
        ("data.batch_size=64", pytest.approx([0.69, 0.89])),
    ]
    by_batch = next(p for p in chart.panels if (p.metric, p.key) == ("test_accuracy", "data.batch_size"))
    assert by_batch.scale == "linear" and [line.label for line in by_batch.series] == [
        "optim=sgd",
        "optim=adam",
    ]
    figure = chart_figure(chart)
    assert len(figure.axes) == 4  # (accuracy, loss) x (optim, data.batch_size)
    optim_axis, optim_loss_axis = figure.axes[:2]  # a row per swept key, a column per metric
    assert [tick.get_text() for tick in optim_axis.get_xticklabels()] == ["sgd", "adam"]
    legend = optim_loss_axis.get_legend()  # one for the row, beside its last panel
    assert legend.get_title().get_text() == "data.batch_size" and optim_axis.get_legend() is None
    assert [text.get_text() for text in legend.get_texts()] == ["32", "64"]
    assert min(text.get_fontsize() for text in legend.get_texts()) >= 10
    assert axis_scale(["0.01", "0.1"]) == "linear" and axis_scale(["1e-4", "1e-2"]) == "log"
    assert axis_scale(["-1", "1"]) == "linear" and axis_scale(["0", "100"]) == "linear"
    assert axis_scale(["0", "1e-4", "1e-3", "1e-2"]) == "categorical"  # weight decay: not piled up at 0
    assert (
        axis_scale(["true", "false"])
        == axis_scale(["inf", "1"])
        == axis_scale(["[64,32]", "[8]"])
        == "categorical"
    )


def test_a_sweep_of_seeds_alone_has_no_chart_and_says_so(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    for seed in (0, 1):
        a_run(sweep / str(seed), [f"seed={seed}"], 0.9 + seed / 100, 0.1)
    assert report_main([str(sweep), "--html", "--plot"]) == 0
    assert not (sweep / CHART_FILE).exists() and "chart:" not in capsys.readouterr().out
    page = (sweep / "report.html").read_text()
    assert "nothing to chart" in page and len(images_in(page)) == 1  # the overlay


def test_a_file_of_the_users_where_the_chart_goes_is_kept_and_the_report_refused(tmp_path, capsys):
    sweep, desk = lr_sweep(tmp_path / "sweep"), tmp_path / "desk"
    desk.mkdir()
    (desk / CHART_FILE).write_text("precious")  # the user's own, where the chart beside --out would go
    assert report_main([str(sweep), "--html", "--out", str(desk / "page.html")]) == 2
    assert f"the sweep chart {desk / CHART_FILE}: exists and is not a report" in capsys.readouterr().err
    assert (desk / CHART_FILE).read_text() == "precious" and not (desk / "page.html").exists()
    (desk / CHART_FILE).unlink()
    for _ in range(2):  # a chart it drew itself is replaced, the second time as the first
        assert report_main([str(sweep), "--html", "--out", str(desk / "page.html")]) == 0
        assert (desk / CHART_FILE).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_hostile_values_are_drawn_as_text_and_shown_escaped(tmp_path):
    sweep = tmp_path / "sweep"
    values = ["<script>alert(1)</script>", "$\\frac{$", "plain"]
    for job, value in enumerate(values):
        a_run(sweep / str(job), [f"model.name={value}"], 0.5 + job / 10, 1.0)
    assert report_main([str(sweep), "--html", "--plot"]) == 0
    page = (sweep / "report.html").read_text()
    chart = (sweep / CHART_FILE).read_bytes()
    assert chart in images_in(page) and Image.open(io.BytesIO(chart)).size[0] > 600
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    figure = chart_figure(sweep_chart(*collect([sweep])))
    assert [tick.get_text() for tick in figure.axes[0].get_xticklabels()] == values


def test_the_overlay_is_legible_past_a_handful_of_runs(tmp_path):
    sweep = lr_sweep(tmp_path / "sweep")
    runs = [(f"run {job}", sweep / str(job)) for job in range(11)]
    figure = overlay_figure(runs, ranked_by="val_accuracy")
    [legend] = figure.legends
    assert min(text.get_fontsize() for text in legend.get_texts()) >= 10
    figure.canvas.draw()
    for axis in figure.axes:
        assert not legend.get_window_extent().overlaps(axis.get_window_extent())  # beside the plots
    loss_axis, accuracy_axis = figure.axes
    assert accuracy_axis.get_ylim() == (0, 1)  # not the autoscaled range of the curves
    # The references of the runs' summaries, drawn dashed and named: chance and the classical baseline.
    texts = [text.get_text() for text in accuracy_axis.texts]
    assert texts == ["chance (val): 0.1", "logistic regression (val): 0.96"]
    assert sorted(line.get_ydata()[0] for line in accuracy_axis.lines if line.get_linestyle() == "--"
                  and len(set(line.get_ydata())) == 1)[-2:] == [0.1, 0.96]  # fmt: skip
    assert len(loss_axis.texts) == 0  # no baseline of the loss was recorded


def test_the_sweep_page_holds_its_own_style_by_hash_and_marks_the_columns_held_in_view(tmp_path):
    sweep = lr_sweep(tmp_path / "sweep")
    assert report_main([str(sweep), "--html"]) == 0
    parsed = Page((sweep / "report.html").read_text())
    [style] = parsed.styles
    assert parsed.policy()["style-src"] == [source_of(style)] and "position: sticky" in style
    boxes = [attrs for tag, attrs in parsed.tags if tag == "div" and attrs.get("class") == "scroll"]
    assert len(boxes) == 2  # the runs, and the mean ± std over seeds
    page = (sweep / "report.html").read_text()
    runs = page.split('id="runs"')[1].split("</thead>")[0]
    headers = re.findall(r"<th( class=\"[^\"]+\")?>([^<]+)</th>", runs)
    assert headers[0] == (' class="hold-left"', "run")
    assert headers[-2:] == [(' class="hold-right right-1 edge"', "baseline"),
                            (' class="hold-right right-0"', "baseline_test_accuracy")]  # fmt: skip


needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no chromium on this machine: the page was parsed, not laid out (`apt-get install chromium` as "
    "root, as .ci/run does)",
)


@needs_chromium
def test_at_1280_px_the_page_never_overflows_and_the_run_and_baseline_stay_in_view_as_the_table_scrolls(
    tmp_path,
):
    from test_page_safety import Browser

    sweep = tmp_path / "sweep"
    keys = [f"model.option_{index}" for index in range(8)]  # many differing overrides: a wide table
    for job in range(3):
        a_run(sweep / str(job), [f"{key}=value_{job}_{key}" for key in keys], 0.5 + job / 10, 1.0)
    assert report_main([str(sweep), "--html"]) == 0
    browser = Browser(tmp_path)
    try:
        browser.call("Emulation.setDeviceMetricsOverride", session=True, width=1280, height=900,
                     deviceScaleFactor=1, mobile=False)  # fmt: skip
        browser.open((sweep / "report.html").as_uri())
        page_width = browser.evaluate("document.documentElement.scrollWidth")
        box = "document.querySelector('#runs').parentElement"
        assert page_width <= 1280  # the page itself never scrolls sideways
        assert browser.evaluate(f"{box}.scrollWidth > {box}.clientWidth")  # the table does, in its box
        browser.evaluate(f"{box}.scrollLeft = 100000")
        edges = browser.evaluate(
            f"(function () {{ var b = {box}.getBoundingClientRect();"
            " var row = document.querySelector('#runs tbody tr');"
            " var first = row.cells[0].getBoundingClientRect(), last = row.cells[row.cells.length - 1]"
            ".getBoundingClientRect(); return [b.left, first.left, b.right, last.right]; })()"
        )
    finally:
        browser.close()
    box_left, run_left, box_right, baseline_right = edges
    assert abs(run_left - box_left) <= 2 and abs(baseline_right - box_right) <= 2


def test_real_runs_of_a_swept_learning_rate_are_charted_from_what_they_recorded(tmp_path):
    import nnexp

    sweep = tmp_path / "sweep"
    tiny = ["trainer.epochs=1", "model.hidden=[16]", "trainer.max_batches_per_epoch=5"]
    results = [nnexp.run([f"optim.lr={lr}", *tiny], output_dir=sweep / str(job))
               for job, lr in enumerate(("0.001", "0.1"))]  # fmt: skip
    assert report_main([str(sweep), "--html"]) == 0
    chart = sweep_chart(*collect([sweep]))
    assert [(panel.metric, panel.key) for panel in chart.panels] == [("test_accuracy", "optim.lr"),
                                                                      ("test_loss", "optim.lr")]  # fmt: skip
    [line] = chart.panels[0].series
    assert line.x == ["0.001", "0.1"] and line.runs == [1, 1]
    assert line.mean == pytest.approx([result.metrics["test_accuracy"] for result in results])
    baseline = chart.panels[0].baseline  # the strongest baseline the runs recorded: logistic regression
    assert baseline is not None and baseline[0] == "logistic regression"
    assert (sweep / CHART_FILE).read_bytes() in images_in((sweep / "report.html").read_text())


def test_a_value_that_is_no_number_blanks_its_own_cell_and_keeps_the_column_for_the_other_runs(tmp_path):
    sweep = lr_sweep(tmp_path / "sweep")
    summary = json.loads((sweep / "0" / "summary.json").read_text())
    summary["metrics"]["final"]["test_accuracy"] = "<script>alert(1)</script>"  # edited by hand
    (sweep / "0" / "summary.json").write_text(json.dumps(summary))
    table, _ = collect([sweep])
    column = table["test_accuracy"]
    assert column.isna().sum() == 1 and column.notna().sum() == len(table) - 1
    assert column.dropna().map(lambda value: isinstance(value, float)).all()


def test_runs_that_learned_from_different_data_are_tabled_but_not_charted_on_one_axis(tmp_path):
    outputs = tmp_path / "outputs"
    a_run(outputs / "fish", ["experiment=fish_linreg", "optim.lr=0.01"], 0.5, 0.2)
    a_run(outputs / "digits", ["optim.lr=0.1"], 0.9, 0.3)
    table, differing = collect([outputs])
    assert len(table) == 2 and sweep_chart(table, differing) is None
