"""report.html in every run folder and `nnexp-report DIR --html`: one self-contained page each.

The views a run may hold (confusion_matrix.png, predictions.csv, ...) are written here in their real formats
(PNGs drawn with matplotlib, CSVs) to check that whatever is present is embedded; the pages are then opened
in a real browser (Debian's chromium, headless) when the machine has one.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from PIL import Image
from test_report import fake_run

from conftest import read_summary, run_folders, run_nnexp
from nnexp.look.page import PAGE_FILE, VIEW_IMAGES, run_page, write_run_page
from nnexp.look.plots import save_learning_curves
from nnexp.look.report import main as report_main

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HOSTILE = "<script>alert('x')</script>"


def a_png(path: Path, title: str) -> Path:
    figure, axis = plt.subplots(figsize=(3, 2))
    axis.imshow([[0, 1], [1, 0]])
    axis.set_title(title)
    figure.savefig(path, dpi=60)
    plt.close(figure)
    return path


def embedded_images(page: str) -> list[bytes]:
    found = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    return [base64.b64decode(data) for data in found]


def a_run_with_views(folder: Path) -> Path:
    """A run folder as nnexp writes it, with every view of issue 15 present and a hostile override."""
    fake_run(folder, ["optim=adam", f"model.name={HOSTILE}"], 0.9)
    (folder / ".hydra" / "config.yaml").write_text(f"optim:\n  lr: 0.001\nnote: '{HOSTILE}'\n")
    summary = json.loads((folder / "summary.json").read_text())
    summary.update(
        baselines=[
            {"name": "logistic regression", "test_accuracy": 0.972},
            {"name": "chance", "test_accuracy": 0.1},
        ],
        diagnostics=[{"code": "overfitting", "epoch": 2, "message": "val loss rose", "hint": "add dropout"}],
        model="MLP",
        num_parameters=12345,
    )
    (folder / "summary.json").write_text(json.dumps(summary))
    save_learning_curves(folder)
    for name in VIEW_IMAGES[2:]:
        a_png(folder / name, name)
    with (folder / "predictions.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["index", "target", "prediction", "loss", "probability", "true_probability"])
        writer.writerows([[i, i % 10, (i * 3) % 10, round(0.01 * i, 3), 0.9, 0.1] for i in range(40)])
    with (folder / "confusion_matrix.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["true \\ predicted", "0", "1"])
        writer.writerows([["0", 17, 1], ["1", 2, 20]])
    return folder


def test_a_run_page_embeds_every_view_present_and_escapes_every_value(tmp_path):
    run = a_run_with_views(tmp_path / "run")
    assert write_run_page(run) == run / PAGE_FILE
    page = (run / PAGE_FILE).read_text()
    images = embedded_images(page)
    assert len(images) == len(VIEW_IMAGES) - 1  # every one but lr_find.png, which this run has not
    for name in ("learning_curves.png", *VIEW_IMAGES[2:]):
        assert (run / name).read_bytes() in images, name
    assert HOSTILE not in page and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "<script" not in page  # a run page needs no script at all
    for shown in ("logistic regression", "0.972", "overfitting", "add dropout", "optim=adam", "lr: 0.001",
                  "Predictions (predictions.csv, 40 rows)", "Confusion matrix", "MLP", "12,345"):  # fmt: skip
        assert shown in page, shown
    worst = page.split("with the highest loss")[1]
    assert worst.index('<td class="num">39</td>') < worst.index('<td class="num">38</td>')
    assert "http://" not in page and "https://" not in page  # nothing fetched from the network


def test_a_page_is_written_for_damaged_or_missing_files_and_a_failed_write_never_raises(tmp_path):
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / "summary.json").write_text('{"status": "comp')  # cut off
    page = run_page(run)
    assert "summary.json: cannot be read" in page and "damaged" in page
    assert write_run_page(tmp_path / "no" / "such" / "run") is None  # a warning, not an exception


def test_every_run_writes_its_page_however_it_ends(tmp_path):
    """A completed and a diverged run through the real CLI: each folder has its report.html, showing it."""
    for root in (tmp_path / "done", tmp_path / "bad"):
        root.mkdir()
    done = run_nnexp("debug=smoke", cwd=tmp_path / "done")
    assert done.returncode == 0, done.stderr
    diverged = run_nnexp("optim=sgd", "optim.lr=1e12", "trainer.epochs=2", cwd=tmp_path / "bad")
    assert diverged.returncode == 3, diverged.stderr
    [completed], [stopped] = run_folders(tmp_path / "done"), run_folders(tmp_path / "bad")
    assert read_summary(completed)["status"] == "completed" and read_summary(stopped)["status"] == "diverged"
    page = (completed / PAGE_FILE).read_text()
    assert "status-completed" in page and "Results beside the baselines" in page
    assert (completed / "learning_curves.png").read_bytes() in embedded_images(page)
    page = (stopped / PAGE_FILE).read_text()  # stopped in its first epoch: no curve yet, but the reason
    assert "status-diverged" in page and "loss became NaN" in page and "lower the learning rate" in page


@pytest.fixture
def seeded_sweep(tmp_path: Path) -> Path:
    root = tmp_path / "outputs" / "multirun" / "2026-01-01" / "10-00-00"
    points = [("sgd", 0, 0.80), ("sgd", 1, 0.84), ("adam", 0, 0.95), ("adam", 1, 0.97)]
    for index, (optim, seed, accuracy) in enumerate(points):
        run = fake_run(root / str(index), [f"optim={optim}", f"seed={seed}"], accuracy)
        write_run_page(run)
    return root


def test_a_sweep_page_has_the_sortable_table_the_overlay_and_mean_std_over_seeds(seeded_sweep):
    assert report_main([str(seeded_sweep), "--html"]) == 0
    page = (seeded_sweep / "report.html").read_text()
    runs = page.split('id="runs"')[1].split("</table>")[0]
    assert runs.count("<tr>") == 4 + 1  # the header and one row per run
    assert [m for m in re.findall(r'<a href="([^"]+)"', runs)] == [f"{i}/report.html" for i in (3, 2, 1, 0)]
    groups = page.split('id="groups"')[1].split("</table>")[0]
    assert "adam" in groups and "0.9267 ± 0.014" in groups and "0.7867 ± 0.028" in groups
    chart, overlay = embedded_images(page)  # the sweep chart (above the curves), then the overlay
    assert chart == (seeded_sweep / "sweep_chart.png").read_bytes()
    assert Image.open(io.BytesIO(overlay)).size[0] > 600
    assert 'addEventListener("click"' in page and 'src="http' not in page


def test_the_sweep_page_goes_where_out_says_and_never_into_a_run(seeded_sweep, tmp_path, capsys):
    out = tmp_path / "pages" / "sweep.html"
    out.parent.mkdir()
    assert report_main([str(seeded_sweep), "--html", "--out", str(out)]) == 0
    assert '<a href="../outputs/multirun/2026-01-01/10-00-00/3/report.html"' in out.read_text()
    one_run = seeded_sweep / "0"
    before = sorted(one_run.rglob("*"))
    capsys.readouterr()
    assert report_main([str(one_run), "--html"]) == 2
    assert report_main([str(seeded_sweep), "--html", "--out", str(one_run / "x.html")]) == 2
    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 2 and "--html --out FILE" in errors[0] and "lies in the run folder" in errors[1]
    assert sorted(one_run.rglob("*")) == before


# ---- in a real browser ------------------------------------------------------------------------------------

CHROMIUM = next((shutil.which(name) for name in ("chromium", "chromium-browser") if shutil.which(name)), None)
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium on this machine (.ci/run installs Debian's package where it can)"
)


def chromium(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    # --no-sandbox: CI containers run as root, where chromium's sandbox refuses to start.
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", *args]
    environment = {**os.environ, "HOME": str(home)}  # its profile stays inside the test's folder
    return subprocess.run(command, capture_output=True, text=True, timeout=120, env=environment)


def rendered(
    page: Path, tmp_path: Path, width: int = 1200, height: int = 1400, sort: str = ""
) -> tuple[str, Image.Image]:
    """The DOM after the page's script ran, and a screenshot of the window, from headless chromium."""
    url = page.as_uri() + (f"#sort={sort}" if sort else "")
    dom = chromium("--dump-dom", url, home=tmp_path)
    assert dom.returncode == 0, dom.stderr[-2000:]
    shot = tmp_path / f"{page.parent.name}.png"
    taken = chromium(f"--screenshot={shot}", f"--window-size={width},{height}", url, home=tmp_path)
    assert taken.returncode == 0 and shot.is_file(), taken.stderr[-2000:]
    return dom.stdout, Image.open(shot).convert("RGB")


def shows_something(image: Image.Image) -> bool:
    colours = image.getcolors(maxcolors=1 << 16)
    return colours is None or len(colours) > 50  # curves, text and tables: many colours, never one


@needs_chromium
def test_a_run_page_renders_in_headless_chromium(tmp_path):
    run = a_run_with_views(tmp_path / "run")
    write_run_page(run)
    dom, shot = rendered(run / PAGE_FILE, tmp_path, 1200, 1400)
    assert shot.size == (1200, 1400) and shows_something(shot)
    assert dom.count("<img") == len(VIEW_IMAGES) - 1 and "<table" in dom and "logistic regression" in dom
    assert "<script>alert" not in dom


@needs_chromium
def test_a_sweep_page_renders_in_headless_chromium_with_its_curves(seeded_sweep, tmp_path):
    assert report_main([str(seeded_sweep), "--html"]) == 0
    dom, shot = rendered(seeded_sweep / "report.html", tmp_path, 1280, 1000)
    assert shot.size == (1280, 1000) and shows_something(shot)
    assert 'id="runs"' in dom and 'id="groups"' in dom and dom.count("data:image/png;base64,") == 2
    assert 'title="click to sort"' in dom  # the inline script ran and made every header sortable
    order = re.findall(r'<a href="(\d)/report.html"', dom)
    assert order == ["3", "2", "1", "0"]  # as written: the best val_accuracy first
    resorted, _ = rendered(seeded_sweep / "report.html", tmp_path, sort="val_accuracy")
    assert re.findall(r'<a href="(\d)/report.html"', resorted) == ["0", "1", "2", "3"]  # a click: ascending
    by_optim, _ = rendered(seeded_sweep / "report.html", tmp_path, sort="optim")
    assert re.findall(r'<a href="(\d)/report.html"', by_optim)[:2] in (["3", "2"], ["2", "3"])  # adam first
    # The overlay sits in the first screen: its plot lines are coloured (tab10), the rest of the page is grey.
    rgb = np.asarray(shot, dtype=int)  # (H, W, 3)
    coloured = (abs(rgb[..., 0] - rgb[..., 1]) > 60) | (abs(rgb[..., 1] - rgb[..., 2]) > 60)
    assert coloured.sum() > 500
