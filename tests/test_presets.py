"""Every preset in experiments/ runs in smoke mode (debug=smoke), composed, checked and run as `nnexp`
does.

Presets are found by globbing experiments/ and its subfolders (experiments/lectures/NAME.yaml is
`experiment=lectures/NAME`), so one added tomorrow is covered without touching this file. Data that
needs a download runs on stand-ins: synthetic images for mnist/fashion_mnist, a text file written here
for time_machine, a generated fish CSV. Each single-run preset runs in this process through nnexp.run
(`nnexp experiment=NAME debug=smoke`); each job of a sweep preset too, the jobs listed by Hydra's basic
sweeper from the preset's hydra.sweeper.params as the command's sweep lists them. One sweep preset also
runs as the real command, a sweep of its jobs with its ledger.

No learner diagnostic fires on a healthy preset: a preset may raise only the codes it declares it
demonstrates (`diagnostics.expect`, e.g. three_blue_lr500's stuck loss). A finding the run itself marked
"resolved at epoch N" no longer stands, so it is not counted.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from test_lectures import ONE_EXAMPLE

import nnexp
from conftest import run_nnexp, write_fish_csv
from nnexp.cli.hydra_hooks import register_resolvers
from nnexp.data.curve import write_curve_csv
from nnexp.paths import CONFIG_DIR, EXPERIMENT_DIR
from nnexp.sweep.ledger import LEDGER_FILE, read_ledger

PRESETS = sorted(
    path.relative_to(EXPERIMENT_DIR).with_suffix("").as_posix() for path in EXPERIMENT_DIR.rglob("*.yaml")
)
LECTURES = [preset for preset in PRESETS if preset.startswith("lectures/")]

TEXT = (
    "The Time Traveller (for so it will be convenient to speak of him) was expounding a recondite "
    "matter to us. His grey eyes shone and twinkled, and his usually pale face was flushed and animated. "
)


def describe(preset: str) -> tuple[str, bool, set[str], list[list[str]]]:
    """(the data loader the preset uses, whether it is itself a sweep, the diagnostics it demonstrates, and
    a sweep's jobs: the overrides of each, as Hydra's basic sweeper lists them from hydra.sweeper.params).
    A CSV preset reading one column `x` is one of seed 004's curve fits (nnexp.data.curve's file), one
    reading x1-x4 seed 001's one-example lesson: each runs on its own kind of file."""
    register_resolvers()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("config", overrides=[f"experiment={preset}"], return_hydra_config=True)
    expected = set(cfg.diagnostics.expect)
    target = str(cfg.data._target_)
    features = list(cfg.data.get("features", [])) if ".tabular." in target else []
    if features == ["x"]:
        target = "curve"
    elif features == ["x1", "x2", "x3", "x4"]:
        target = "one_row"
    params = [f"{key}={value}" for key, value in (cfg.hydra.sweeper.get("params") or {}).items()]
    [jobs] = BasicSweeper.split_arguments(OverridesParser.create().parse_overrides(params), None)
    return target, str(cfg.hydra.mode) == "RunMode.MULTIRUN", expected, jobs


DESCRIBED = {preset: describe(preset) for preset in PRESETS}


def data_family(target: str) -> str:
    if target in ("curve", "one_row"):
        return target
    for family in ("images", "text", "tabular", "digits", "synthetic"):  # synthetic: drawn, needs no stand-in
        if f".{family}." in target:
            return family
    return target  # a new kind of data: runs with no stand-in, so it shows up here if it needs one


def stand_in_data(family: str, tmp_path: Path) -> list[str]:
    """Overrides that replace a download. `++`: set whether or not the preset's data config has the key."""
    if family == "images":
        return ["++data.synthetic=true", "++data.synthetic_sizes=[512,256]", "++data.val_size=128"]
    if family == "text":
        text = tmp_path / "book.txt"
        text.write_text(TEXT * 60)  # ~12,000 characters: enough for a few batches of 32 x 35
        return [f"++data.path={text}"]
    if family == "tabular":
        return [f"++data.path={write_fish_csv(tmp_path / 'Fish.csv', rows=159)}"]
    if family == "curve":
        return [f"++data.path={write_curve_csv(tmp_path / 'curve.csv')}"]
    if family == "one_row":
        (tmp_path / "one_example.csv").write_text(ONE_EXAMPLE)
        return [f"++data.path={tmp_path / 'one_example.csv'}"]
    return []


SINGLE = {}
for name, (target, is_sweep, *_) in DESCRIBED.items():
    if not is_sweep:
        SINGLE.setdefault(data_family(target), []).append(name)
SWEEPS = [name for name, (_, is_sweep, *_) in DESCRIBED.items() if is_sweep]
SINGLE_PRESETS = sorted(name for names in SINGLE.values() for name in names)


def ledger_of(tmp_path: Path) -> list[dict]:
    [ledger] = (tmp_path / "outputs" / "multirun").rglob(LEDGER_FILE)
    return read_ledger(ledger)


def standing(summary: dict) -> set[str]:
    """The codes a run still reports at its end: its summary's findings with no resolved_at."""
    return {finding["code"] for finding in summary["diagnostics"] if finding.get("resolved_at") is None}


def standing_diagnostics(tmp_path: Path, entry: dict) -> set[str]:
    """The codes a sweep job's run still reports at its end (its summary.json)."""
    [ledger] = (tmp_path / "outputs" / "multirun").rglob(LEDGER_FILE)
    return standing(json.loads((ledger.parent / entry["run_dir"] / "summary.json").read_text()))


def smoke_run(tmp_path: Path, preset: str, *job: str) -> dict:
    """The summary of `nnexp experiment=PRESET debug=smoke JOB...` on the preset's stand-in data, run in
    this process (nnexp.run: the command's checks and run)."""
    data = stand_in_data(data_family(DESCRIBED[preset][0]), tmp_path)
    overrides = [f"experiment={preset}", "debug=smoke", *data, *job]
    result = nnexp.run(overrides, output_dir=tmp_path / "run")
    assert result.status == "completed", (overrides, result.summary.get("error"))
    return result.summary


def test_every_preset_is_covered_is_global_and_states_its_command():
    assert sum(len(names) for names in SINGLE.values()) + len(SWEEPS) == len(PRESETS) >= 10
    assert len(LECTURES) >= 14  # the notebooks' experiments (docs/lectures.md, "The lecture experiments")
    for preset in PRESETS:
        package, command = (EXPERIMENT_DIR / f"{preset}.yaml").read_text().splitlines()[:2]
        assert package == "# @package _global_", preset  # Hydra reads it only on the first line
        assert command.startswith(f"# nnexp experiment={preset}"), preset


@pytest.mark.parametrize("preset", SINGLE_PRESETS)
def test_single_run_presets_run_in_smoke_mode(tmp_path, preset):
    summary = smoke_run(tmp_path, preset)
    assert summary["epochs_completed"] == 1
    assert standing(summary) - DESCRIBED[preset][2] == set()  # only the codes it declares it demonstrates


@pytest.mark.parametrize("preset", SWEEPS)
def test_sweep_presets_run_their_sweep_in_smoke_mode(tmp_path, preset):
    """Each job of the preset's sweep, in this process (the sweep as the command runs it: below)."""
    jobs = DESCRIBED[preset][3]
    assert len(jobs) >= 2
    for number, job in enumerate(jobs):
        summary = smoke_run(tmp_path / f"job{number}", preset, *job)
        assert summary["epochs_completed"] == 1, job
        assert standing(summary) - DESCRIBED[preset][2] == set(), job


def test_a_sweep_preset_runs_its_sweep_from_the_command_line(tmp_path):
    """`nnexp experiment=compare_...` is a sweep without -m: one process runs every job, each in its own
    folder, and the sweep's ledger records each (the preset with the fewest jobs)."""
    preset = min(SWEEPS, key=lambda name: len(DESCRIBED[name][3]))
    family = data_family(DESCRIBED[preset][0])
    result = run_nnexp(f"experiment={preset}", "debug=smoke", *stand_in_data(family, tmp_path), cwd=tmp_path)
    ledger = ledger_of(tmp_path)
    failed = {
        " ".join(entry["overrides"]): entry.get("error") for entry in ledger if entry["status"] != "completed"
    }
    assert failed == {}, result.stderr[-3000:]
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = sorted(sorted(job) for job in DESCRIBED[preset][3])  # as listed in this process (above)
    assert sorted(sorted(set(entry["overrides"]) & set(sum(jobs, []))) for entry in ledger) == jobs
    assert {entry["epochs_completed"] for entry in ledger} == {1}
    expected = DESCRIBED[preset][2]
    unexpected = {
        " ".join(entry["overrides"]): standing_diagnostics(tmp_path, entry) - expected for entry in ledger
    }
    assert unexpected == dict.fromkeys(unexpected, set())
