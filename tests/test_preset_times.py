"""The stated times of the presets (issue 28, "True times"): benchmarks/presets.py rewrites the one marked
time of a preset's header and of docs/lectures.md, and nothing else; a time measured above load 1.5 says
so; no preset or lecture table states a time outside its marker. The timing itself is not tested."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def presets():
    path = ROOT / "benchmarks" / "presets.py"
    sys.path.insert(0, str(path.parent))  # it imports its sibling benchmark modules
    spec = importlib.util.spec_from_file_location("nnexp_benchmark_presets", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up there
    spec.loader.exec_module(module)
    yield module
    sys.path.remove(str(path.parent))
    del sys.modules[spec.name]


PRESET = """\
# @package _global_
# nnexp experiment=lectures/toy data.path=toy.csv   (first: python -m nnexp.data.curve toy.csv)
# Seed 004 (004.txt, `class toy`): a straight line through a curve. It shows what a line cannot do.
# nnexp: train MSE 0.4562 after 2000 steps.
defaults:
  - override /data: csv
optim:
  lr: 0.001   # the notebook's
trainer:
  epochs: 2000
"""

TABLE = """\
| preset | result | wall time |
|---|---|---|
| `toy` | MSE 0.4562 | <!-- time:lectures/toy -->893 s<!-- /time --> |
| `other` | MSE 0.1 | <!-- time:lectures/other -->12 s (idle, load 0.3, 2026-01-01)<!-- /time --> |
"""


def measurement(presets, seconds=11.8, before=0.4, after=1.2, own=0.8):
    return presets.Measurement(
        preset="lectures/toy", command="nnexp experiment=lectures/toy data.path=toy.csv", seconds=seconds,
        load_before=before, load_after=after, own_load=own, date="2026-12-07", cores=2,
    )  # fmt: skip


def test_the_time_line_is_added_at_the_end_of_the_header_then_replaced_and_no_value_changes(
    presets, tmp_path
):
    idle = presets.rewrite_header(PRESET, presets.yaml_line(measurement(presets)))
    lines = idle.splitlines()
    assert lines[4] == (
        "# time: ~12 s (measured idle 2026-12-07, 2 cores, load 0.4 before, 1.2 after: "
        "`nnexp experiment=lectures/toy data.path=toy.csv`)"
    )
    assert lines[:4] + lines[5:] == PRESET.splitlines()  # every other line as it was
    assert yaml.safe_load(idle) == yaml.safe_load(PRESET)

    busy = presets.rewrite_header(idle, presets.yaml_line(measurement(presets, before=3.2, after=4.1)))
    [line] = [line for line in busy.splitlines() if line.startswith("# time:")]
    assert line.startswith(
        "# time: 12 s, measured at load 3.3, not idle (2026-12-07, 2 cores, load 3.2 before"
    )
    assert "idle (" not in line.replace("not idle (", "") and "~" not in line  # never read as an idle time
    assert busy.splitlines()[:4] + busy.splitlines()[5:] == PRESET.splitlines()

    # The command and the description the CLI reads from the header are those of the preset before.
    from nnexp.cli.preset_command import preset_command
    from nnexp.cli.usage import preset_descriptions

    for name, text in (("before", PRESET), ("after", busy)):
        (tmp_path / name / "experiment").mkdir(parents=True)
        (tmp_path / name / "experiment" / "toy.yaml").write_text(text)
    command = preset_command("toy", tmp_path / "after")
    assert command == preset_command("toy", tmp_path / "before")
    assert command == "python -m nnexp.data.curve toy.csv && nnexp experiment=lectures/toy data.path=toy.csv"
    assert preset_descriptions(tmp_path / "after") == preset_descriptions(tmp_path / "before")
    assert preset_descriptions(tmp_path / "after")["toy"] == "a straight line through a curve"


def test_the_load_after_a_run_counts_other_work_only(presets):
    # 0.4 before, 1.9 after, 0.8 of it the run's own threads: other work 1.1, idle.
    assert measurement(presets, before=0.4, after=1.9, own=0.8).idle
    # The load before decides when the run's own share explains the rest.
    assert not measurement(presets, before=1.6, after=1.0, own=0.8).idle
    # Work that started during the run: 3.5 after, 0.8 of it the run's: 2.7.
    busy = measurement(presets, before=0.4, after=3.5, own=0.8)
    assert not busy.idle and busy.load == pytest.approx(2.7)
    assert presets.markdown_text(busy) == "12 s, measured at load 2.7, not idle (2026-12-07)"
    assert (
        presets.markdown_text(measurement(presets, seconds=251.0)) == "~4.2 min (idle, load 0.4, 2026-12-07)"
    )
    assert presets.markdown_text(None) == "not measured idle yet"
    # Near the line the load is rounded away from it: never "load 1.5, not idle".
    assert measurement(presets, before=1.54, after=1.0).shown_load == "1.6"
    assert measurement(presets, before=1.49, after=1.0).shown_load == "1.4"


def test_the_markdown_marker_of_one_preset_is_rewritten_and_no_other(presets):
    text, count = presets.rewrite_markdown(TABLE, "lectures/toy", "~7.5 s (idle, load 0.2, 2026-12-07)")
    assert count == 1
    assert presets.markers(text) == {
        "lectures/toy": "~7.5 s (idle, load 0.2, 2026-12-07)",
        "lectures/other": "12 s (idle, load 0.3, 2026-01-01)",
    }
    assert text.replace("~7.5 s (idle, load 0.2, 2026-12-07)", "893 s") == TABLE
    assert presets.rewrite_markdown(TABLE, "lectures/absent", "1 s") == (TABLE, 0)


def test_write_rewrites_the_preset_file_and_the_page(presets, tmp_path, monkeypatch):
    experiments = tmp_path / "experiments"
    (experiments / "lectures").mkdir(parents=True)
    (experiments / "lectures" / "toy.yaml").write_text(PRESET)
    page = tmp_path / "docs" / "lectures.md"
    page.parent.mkdir()
    page.write_text(TABLE)
    monkeypatch.setattr(presets, "ROOT", tmp_path)
    monkeypatch.setattr(presets, "EXPERIMENTS", experiments)
    busy = measurement(presets, before=3.0, after=3.5)
    assert presets.write(busy, page) == ["experiments/lectures/toy.yaml", "docs/lectures.md (1)"]
    assert presets.header_time((experiments / "lectures" / "toy.yaml").read_text()) == presets.yaml_line(busy)
    assert (
        presets.markers(page.read_text())["lectures/toy"]
        == "12 s, measured at load 3.0, not idle (2026-12-07)"
    )
    assert presets.resolve("toy") == "lectures/toy"
    with pytest.raises(SystemExit, match="no preset 'nothing'"):
        presets.resolve("nothing")


def test_each_preset_runs_on_the_stand_in_its_data_needs_without_smoke_mode(presets, tmp_path):
    files = presets.stand_ins(tmp_path)
    assert presets.command_for("lectures/gp_relu", files) == [
        "experiment=lectures/gp_relu", f"data.path={files['curve']}"
    ]  # fmt: skip
    assert presets.command_for("lectures/three_blue_gd", files) == [
        "experiment=lectures/three_blue_gd", "data.synthetic=true"
    ]  # fmt: skip
    assert presets.command_for("lectures/digits_fnn_tanh", files) == ["experiment=lectures/digits_fnn_tanh"]
    assert presets.command_for("compare_init", files)[0] == "-m"  # a sweep preset runs as one


# ---- what the checkout states ---------------------------------------------------------------------------

TIME = re.compile(r"\b\d+(?:[.,]\d+)?(?:-\d+(?:\.\d+)?)? ?(?:s|ms|min|minutes?|seconds?|hours?)\b")


def test_every_lecture_preset_states_its_time_in_its_marker_only(presets):
    page = (ROOT / "docs" / "lectures.md").read_text()
    stated = presets.markers(page)
    for preset in presets.lecture_presets():
        text = (presets.EXPERIMENTS / f"{preset}.yaml").read_text()
        assert presets.header_time(text), f"{preset}: no `# time:` line in its header"
        assert preset in stated, f"docs/lectures.md: no time marker for {preset}"
    for path in sorted(presets.EXPERIMENTS.rglob("*.yaml")):
        header = [line for line in path.read_text().splitlines() if line.startswith("#")]
        loose = [line for line in header if TIME.search(line) and not line.startswith("# time:")]
        assert loose == [], f"{path.name}: a time outside its `# time:` line"
    without_markers = re.sub(r"<!-- time:.*?<!-- /time -->", "", page)
    assert TIME.findall(without_markers) == [], "docs/lectures.md: a time outside a marker"
    for text in stated.values():  # a time is measured idle, at a load said to be not idle, or not stated
        assert text == presets.NOT_MEASURED or "(idle, load " in text or ", not idle (" in text, text
