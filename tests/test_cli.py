"""The `nnexp` command end to end, as a user runs it: real Hydra, real files.

What is about the process (its console in a pipe, concurrent processes) runs the real command in a
subprocess; what a run computes and writes runs in this process through nnexp.run, which composes and
checks the config as the command does, and `--cfg job` through the command's own main(). A sweep's run
folders: tests/test_sweeps.py; the exit code and the one stderr line of a mistake: tests/test_usage_errors.py.
"""

from __future__ import annotations

import csv
import os
import subprocess
from pathlib import Path

import pytest
import torch
import yaml
from omegaconf import OmegaConf

import nnexp
from conftest import NNEXP, compose_config, read_summary, run_folders, run_nnexp, write_fish_csv
from nnexp.cli.preflight import preflight
from nnexp.errors import ConfigError, UserError, exit_with

REAL_FISH = Path(__file__).resolve().parents[2] / "shared" / "data" / "Fish.csv"
QUICK = ["trainer.epochs=2"]


def metric_values(run_folder: Path) -> list[dict[str, str]]:
    """metrics.csv without its time columns."""
    rows = list(csv.DictReader((run_folder / "metrics.csv").open()))
    return [{k: v for k, v in row.items() if not k.endswith("seconds")} for row in rows]


def test_a_run_trains_evaluates_and_records_everything_in_its_own_folder(session_runs):
    # Where the command puts the folder (outputs/DATE/TIME): test_runs_started_in_the_same_second_...;
    # its final table on the console: test_output_to_a_pipe_or_a_file_is_plain_lines_with_nothing_padded.
    folder = session_runs(*QUICK)
    for name in [".hydra/config.yaml", ".hydra/overrides.yaml", "metrics.csv", "summary.json",
                 "checkpoint.pt", "nnexp.log"]:  # fmt: skip
        assert (folder / name).is_file(), name
    summary = read_summary(folder)
    assert summary["status"] == "completed"
    assert summary["epochs_completed"] == 2 and summary["seed"] == 0 and summary["device"] == "cpu"
    assert summary["num_parameters"] == (64 * 256 + 256) + (256 * 256 + 256) + (256 * 10 + 10)
    assert set(summary["metrics"]["final"]) >= {"train_accuracy", "val_accuracy", "test_accuracy"}
    assert summary["metrics"]["best"]["val_loss"] <= float(metric_values(folder)[0]["val_loss"])
    assert len(metric_values(folder)) == 2
    checkpoint = torch.load(folder / "checkpoint.pt", weights_only=True)
    assert checkpoint["epoch"] == 2 and "layers.1.weight" in checkpoint["model"]
    assert "epoch 2/2" in (folder / "nnexp.log").read_text()


def test_output_to_a_pipe_or_a_file_is_plain_lines_with_nothing_padded(tmp_path):
    # The softmax mistake makes a finding longer than any console width, and a diagnostics table.
    result = run_nnexp("model.output_activation=softmax", "trainer.epochs=1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    [folder] = run_folders(tmp_path)
    resumed = run_nnexp(f"resume={folder}", "trainer.epochs=2", "force=true", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    for name, text in [("stdout", result.stdout), ("stderr", result.stderr), ("resume", resumed.stdout),
                       ("nnexp.log", (folder / "nnexp.log").read_text())]:  # fmt: skip
        padded = [line for line in text.splitlines() if line != line.rstrip()]
        assert padded == [], f"{name}: {padded[:3]}"
    lines = result.stdout.splitlines()
    [finding] = [line for line in lines if line.startswith("[softmax-before-cross-entropy]")]
    assert finding.endswith("cross_entropy takes raw logits")  # one record, one line: greppable
    assert "━━━" in result.stdout  # the results table is still drawn
    assert "test" in result.stdout and "accuracy" in result.stdout  # the final table's rows


@pytest.mark.slow
def test_the_default_experiment_reaches_95_percent_on_digits(tmp_path):
    summary = read_summary(nnexp.run([], output_dir=tmp_path / "run").run_dir)
    assert summary["metrics"]["final"]["test_accuracy"] >= 0.95  # its training time: benchmarks/


def least_squares_of(summary: dict) -> dict:
    return next(baseline for baseline in summary["baselines"] if baseline["name"].startswith("least squares"))


def test_fish_regression_reports_the_least_squares_baseline(tmp_path, fish_csv, capsys):
    overrides = ["data=fish", f"data.path={fish_csv}", "model=linear", "optim=sgd", "optim.lr=0.1"]
    summary = read_summary(nnexp.run(overrides, output_dir=tmp_path / "run").run_dir)
    baseline = least_squares_of(summary)
    assert len(baseline["weights"]) == 3
    assert summary["metrics"]["final"]["test_mse"] < 1.5 * baseline["test_mse"]
    assert "least squares" in capsys.readouterr().out  # beside the network in the final table


def fish_linreg_gap(tmp_path: Path, csv_path: Path) -> float:
    run = nnexp.run(["experiment=fish_linreg", f"data.path={csv_path}"], output_dir=tmp_path / "run")
    summary = read_summary(run.run_dir)
    return summary["metrics"]["final"]["test_mse"] / least_squares_of(summary)["test_mse"] - 1


@pytest.mark.slow
def test_the_fish_preset_reaches_the_least_squares_optimum(tmp_path):
    csv_path = write_fish_csv(tmp_path / "Fish.csv", rows=159)
    assert abs(fish_linreg_gap(tmp_path, csv_path)) < 0.02


@pytest.mark.slow
@pytest.mark.skipif(not REAL_FISH.is_file(), reason="the real fish CSV is not beside this checkout")
def test_the_fish_preset_reaches_the_optimum_on_the_real_file(tmp_path):
    assert abs(fish_linreg_gap(tmp_path, REAL_FISH)) < 0.02


def test_the_same_seed_gives_identical_metrics(tmp_path):
    args = ["trainer.epochs=3", "regularization=dropout"]
    first, second, other_seed = (
        nnexp.run([*args, f"seed={seed}"], output_dir=tmp_path / f"run{number}").run_dir
        for number, seed in enumerate([7, 7, 8])
    )
    assert metric_values(first) == metric_values(second)
    assert metric_values(other_seed) != metric_values(first)


def test_runs_started_in_the_same_second_get_their_own_folders(tmp_path):
    processes = [
        subprocess.Popen([*NNEXP, "trainer.epochs=1", f"seed={seed}"], cwd=tmp_path,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for seed in range(4)
    ]  # fmt: skip
    for process in processes:
        assert process.wait(timeout=300) == 0, process.stderr.read()
    folders = run_folders(tmp_path)
    assert len(folders) == 4
    assert all(folder.parent.parent == tmp_path / "outputs" for folder in folders)  # outputs/DATE/TIME
    seeds = sorted(yaml.safe_load((folder / ".hydra/config.yaml").read_text())["seed"] for folder in folders)
    assert seeds == [0, 1, 2, 3]
    for folder in folders:
        overrides = yaml.safe_load((folder / ".hydra/overrides.yaml").read_text())
        assert f"seed={read_summary(folder)['seed']}" in overrides
        assert read_summary(folder)["status"] == "completed"


CONFIG_MISTAKES = [
    (["optim.lr=-0.1"], "optim.lr=-0.1 is not allowed"),
    (["model.dropout=1.5"], "model.dropout=1.5 is not allowed"),
    (["model.activation=swish"], "model.activation=swish is not allowed"),
    (["trainer.batch_size=-1"], "trainer.batch_size=-1 is not allowed"),
    (["data=csv"], "are required"),
]


@pytest.mark.parametrize(("args", "message"), CONFIG_MISTAKES)
def test_a_bad_value_stops_before_any_run_folder_with_one_line(tmp_path, monkeypatch, args, message):
    """The command's preflight, in this process (the exit code and the stderr line: test_usage_errors)."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as refused:
        preflight(args)
    assert refused.value.exit_code == 2
    assert message in str(refused.value) and "\n" not in str(refused.value)
    assert list(tmp_path.iterdir()) == []


def data_mistakes(tmp_path: Path) -> dict[str, tuple[list[str], str]]:
    fish = write_fish_csv(tmp_path / "fish.csv")
    bad_cell = tmp_path / "bad.csv"
    header, first, *rest = fish.read_text(encoding="utf-8-sig").splitlines()
    species, _weight, *measures = first.split(",")
    bad_cell.write_text("\n".join([header, ",".join([species, "heavy", *measures]), *rest]) + "\n")
    (tmp_path / "empty.csv").write_text("")
    return {
        "missing file": (["data=fish", "data.path=nowhere.csv"], "no such file"),
        "empty file": (["data=fish", f"data.path={tmp_path / 'empty.csv'}"], "the file is empty"),
        "unknown column": (
            ["data=fish", f"data.path={fish}", "data.features=[Height,Girth]"],
            "column 'Girth' is not in",
        ),  # fmt: skip
        "non-numeric cell": (["data=fish", f"data.path={bad_cell}"], "holds 'heavy'"),
        "no cuda": (["device=cuda"], "no usable CUDA GPU"),
    }


@pytest.mark.parametrize("mistake", ["missing file", "empty file", "unknown column", "non-numeric cell",
                                     "no cuda"])  # fmt: skip
def test_bad_input_data_fails_with_one_line_and_leaves_no_run_folder(tmp_path, monkeypatch, mistake):
    """Found by the run once its folder is claimed (in this process through nnexp.run, as the command's
    job does), and the folder is given back; the command's exit code 2: test_usage_errors."""
    if mistake == "no cuda" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    args, message = data_mistakes(tmp_path)[mistake]
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError) as refused:
        nnexp.run(args)
    assert refused.value.exit_code == 2
    assert message in str(refused.value) and "\n" not in str(refused.value)
    assert not (tmp_path / "outputs").exists()  # tests/test_mistakes_leave_nothing.py: nor any other folder


def test_hydra_full_error_shows_the_traceback(monkeypatch, capsys):
    """How the command reports a refused value (nnexp.errors.exit_with), in this process; the variable
    read by the real command: tests/test_usage_errors.py::test_hydra_full_error_adds_the_trace_..."""
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    with pytest.raises(SystemExit) as stopped:
        try:
            preflight(["optim.lr=-1"])
        except UserError as error:
            exit_with(error)
    assert stopped.value.code == 2
    stderr = capsys.readouterr().err
    assert "Traceback" in stderr and "optim.lr=-1 is not allowed" in stderr


def test_help_lists_the_groups_and_the_presets(tmp_path, monkeypatch, capsys):
    """The command's main(), in this process (that it answers without Hydra: nnexp/cli/command.py)."""
    from nnexp.cli.command import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.argv", ["nnexp", "--help"])
    main()  # returns: exit code 0
    stdout = capsys.readouterr().out
    for line in ["usage: nnexp", "model: ", "optim: ", "experiment: ", "digits_mlp", "fish_linreg"]:
        assert line in stdout
    assert list(tmp_path.iterdir()) == []


def test_help_into_a_pipe_its_reader_has_closed_ends_quietly(tmp_path):
    """`nnexp --help | head -1`: head exits before nnexp writes; no traceback about the broken pipe."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first byte is written
    try:
        result = subprocess.run([*NNEXP, "--help"], cwd=tmp_path, stdout=write_end, stderr=subprocess.PIPE,
                                text=True, timeout=60)  # fmt: skip
    finally:
        os.close(write_end)
    assert result.returncode == 0
    assert result.stderr == ""


def test_a_run_whose_reader_closes_the_pipe_trains_on_and_completes(tmp_path):
    """`nnexp | head -2`: the console goes quiet, the run does not fail; nnexp.log has every line."""
    process = subprocess.Popen([*NNEXP, "trainer.epochs=5"], cwd=tmp_path, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)  # fmt: skip
    assert process.stdout.readline().startswith("data: digits")
    process.stdout.close()  # as head does after its lines
    stderr = process.stderr.read()
    assert process.wait(timeout=300) == 0, stderr
    assert stderr == ""
    [folder] = run_folders(tmp_path)
    assert read_summary(folder)["status"] == "completed"
    assert "epoch 5/5" in (folder / "nnexp.log").read_text()


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs Linux's /dev/full")
def test_a_run_whose_output_file_is_full_says_so_once_and_goes_on_while_a_tool_gets_the_error(capfd):
    """`nnexp > /dev/full`: the run's console says once that standard output refused more and carries on
    (its nnexp.log has every line); nnexp-report, whose output is its product, gets the error."""
    from nnexp.runs.console import PlainLines

    with open("/dev/full", "w") as full:
        console = PlainLines(full, beside_a_log=True)
        console.write("data: digits\n")
        console.write("epoch 1/1\n")  # the descriptor now leads to the null device
        console.flush()
    assert capfd.readouterr().err == (
        "nnexp: standard output refused more (No space left on device): the run goes on, "
        "and what it says is in nnexp.log in its folder\n"
    )
    with pytest.raises(OSError, match="No space left"), open("/dev/full", "w") as full:
        PlainLines(full).write("| run | val_loss |\n")


def hydra_groups(loader, parent: str = "") -> dict[str, list[str]]:
    """What Hydra's own --help lists: every group but hydra/..., with its options."""
    from hydra.core.object_type import ObjectType

    groups = {}
    for name in loader.list_groups(parent):
        group = f"{parent}/{name}" if parent else name
        if group != "hydra":
            options = loader.get_group_options(group, ObjectType.CONFIG)
            groups |= {group: sorted(options)} if options else {}
            groups |= hydra_groups(loader, group)
    return groups


def test_help_read_from_disk_lists_what_hydra_composes():
    """`nnexp --help` reads configs/ without Hydra: the same groups and options, defaults marked. A subfolder
    of a group's options (experiments/lectures/) is listed as Hydra composes it, `experiment=lectures/NAME`,
    rather than as the group `experiment/lectures` Hydra's own --help shows."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from nnexp.cli.hydra_hooks import register_resolvers
    from nnexp.cli.usage import config_groups, help_text
    from nnexp.paths import CONFIG_DIR

    register_resolvers()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        expected = hydra_groups(GlobalHydra.instance().config_loader())
        choices = compose(config_name="config", return_hydra_config=True).hydra.runtime.choices
        compose(config_name="config", overrides=["experiment=lectures/digits_softmax"])  # the spelling works
    for sub in ("experiment/lectures",):
        expected["experiment"] += [f"lectures/{option}" for option in expected.pop(sub)]  # after the others
    assert config_groups(CONFIG_DIR) == dict(sorted(expected.items()))
    shown = " ".join(help_text(CONFIG_DIR).split())  # long option lists are wrapped
    for group, options in expected.items():
        marked = [f"{option}*" if choices.get(group) == option else option for option in options]
        assert f"{group}: " + ", ".join(marked) in shown, group


def test_cfg_job_prints_the_composed_config_without_running(tmp_path, monkeypatch, capsys):
    """`nnexp experiment=fish_linreg --cfg job` through the command's main() and Hydra, in this process (the
    real command prints a config in a subprocess in tests/test_readme.py, and imports no torch for it in
    tests/test_performance_options.py)."""
    import hydra.core.utils
    from hydra.core.global_hydra import GlobalHydra

    from nnexp.cli.command import main
    from nnexp.sweep.workers import SWEEP_PID_ENV

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.argv", ["nnexp", "experiment=fish_linreg", "--cfg", "job"])
    monkeypatch.setenv(SWEEP_PID_ENV, str(os.getpid()))  # main() sets it
    monkeypatch.setattr(hydra.core.utils, "_save_config", hydra.core.utils._save_config)  # main() swaps it
    try:
        main()
    finally:
        GlobalHydra.instance().clear()  # Hydra's main leaves itself initialised in this process
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["optim"]["_target_"] == "torch.optim.SGD" and printed["trainer"]["epochs"] == 100
    # the config nnexp.run, the preflight and tests/test_readme.py compose in-process
    assert printed == OmegaConf.to_container(compose_config("experiment=fish_linreg"))
    assert list(tmp_path.iterdir()) == []  # nothing run, nothing made
