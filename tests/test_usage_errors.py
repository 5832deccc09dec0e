"""Usage and config mistakes: exit code 2, one line that names the fix, and nothing created."""

from __future__ import annotations

import pytest

from conftest import compose_config, run_folders, run_nnexp
from nnexp.cli.preflight import preflight
from nnexp.config.checks import check_config
from nnexp.errors import ConfigError

MISTAKES = [
    (["optim.lrr=0.1"], "unknown key optim.lrr (did you mean optim.lr?)"),
    (["+optim.lrr=0.1"], "unknown key optim.lrr (did you mean optim.lr?)"),
    (["+epochz=3"], "unknown key epochz (did you mean trainer.epochs?)"),
    (["+trainer.epochs=3"], "+trainer.epochs=3: trainer.epochs is in the config already, and + only adds"),
    (["trainer.epocs=3"], "unknown key trainer.epocs (did you mean trainer.epochs?)"),
    (["modle=mlp"], "unknown key modle (did you mean model?)"),
    (["model=mlpp"], "model=mlpp is not an option (did you mean model=mlp?): choose one of"),
    (["model=cnnn"], "model=cnnn is not an option (did you mean model=cnn?): choose one of"),
    (["experiment=nope"], "experiment=nope is not an option"),
    (
        ["experiment=lectures/digits_sofmax"],
        "experiment=lectures/digits_sofmax is not an option (did you mean experiment=lectures/digits_softmax",
    ),
    (["~seed"], "~seed would remove a key nnexp reads"),
    (["model.hidden=[1,2"], "cannot read the command line"),
    (["optim=sgd,adam"], "optim=sgd,adam gives several values: to run each, sweep with -m (nnexp -m optim="),
    (["optim.lr=0.01,0.1"], "optim.lr=0.01,0.1 gives several values: to run each, sweep with -m"),
    (["++foo=1"], "unknown key foo"),
    (["optim=sgd", "optim.momentum=2"], "optim.momentum=2 is not allowed: use a number in [0, 1)"),
    (["model._target_=os.system"], "model._target_=os.system is not allowed"),
    (["trainer.epochs=-1"], "trainer.epochs=-1 is not allowed"),
    (["optim.lr=0"], "optim.lr=0 is not allowed"),
    (["data=csv"], "data.features, data.path, data.target are required"),
    (["logger=[csv,tensorbord]"], "logger=tensorbord is not an option (did you mean logger=tensorboard?)"),
    (["regularization=[l2,l2]"], "regularization lists l2 twice: name each option once"),
    (["trainer.threads=100000"], "trainer.threads=100000 is not allowed: use null, auto or a whole number"),
    (["trainer.epochs=1e12"], "trainer.epochs=1000000000000.0 is not allowed: use a whole number"),
    (["seed=${oops}"], "seed=${oops}: Interpolation key 'oops' not found; an interpolation names a key"),
    (["trainer.epochs=${trainer.epochs}"], "trainer.epochs=${trainer.epochs}: Recursive interpolation"),
    (
        ["trainer.epochs=${oc.env:NNEXP_UNSET_IN_TESTS}"],
        "Environment variable 'NNEXP_UNSET_IN_TESTS' not found",
    ),
]


@pytest.mark.parametrize(("overrides", "message"), MISTAKES)
def test_preflight_names_each_mistake(tmp_path, monkeypatch, overrides, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as error:
        preflight(overrides)
    assert message in str(error.value)
    assert "\n" not in str(error.value)
    assert list(tmp_path.iterdir()) == []  # refused before Hydra makes any folder


def test_preflight_accepts_a_sound_command_line():
    preflight(["model=mlp", "model.hidden=[256,128]", "optim=adam", "regularization=[l2,dropout]"])


def test_in_a_sweep_every_value_must_compose():
    with pytest.raises(ConfigError, match="optim=adamm is not an option"):
        preflight(["optim=sgd,adamm"], multirun=True)


def test_in_a_sweep_an_out_of_range_value_stops_the_sweep_before_its_first_job():
    """Each job is checked as a single run would be (tests/test_api_and_sweep_checks.py)."""
    with pytest.raises(ConfigError, match=r"optim.lr=-1 is not allowed.*\(sweep job 2 of 2: optim.lr=-1\)"):
        preflight(["optim.lr=0.1,-1"], multirun=True)
    with pytest.raises(ConfigError, match="trainer.epochs=0"):
        preflight(["optim.lr=0.1,-1", "trainer.epochs=0"], multirun=True)


def test_targets_outside_nnexp_and_torch_are_refused():
    with pytest.raises(ConfigError, match="optim._target_=builtins.eval is not allowed"):
        check_config(compose_config("optim._target_=builtins.eval"))


# One command line per way a mistake reaches the process: refused by the preflight before Hydra starts,
# and by the run itself once Hydra has made its folder (the data file is read). What each mistake says is
# checked in-process above (MISTAKES), in tests/test_cli.py, and below for the argument parser's mistakes
# (nnexp's main() in this process); here, what the process does.
@pytest.mark.parametrize(
    "args",
    [["optim.lrr=0.1"], ["data=fish", "data.path=nowhere.csv"]],
    ids=["preflight", "found-by-the-run"],
)
def test_the_cli_exits_2_with_one_line_and_no_run_folder(tmp_path, args):
    result = run_nnexp(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith("nnexp: error: ")
    assert not (tmp_path / "outputs").exists() and run_folders(tmp_path) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--bogus"], "unrecognized arguments: --bogus"),
        (["trainer.epochs=1", "-m", "seed=1,2"], "unrecognized arguments: seed=1,2"),
    ],
)
def test_a_flag_the_parser_does_not_take_is_one_line_saying_where_flags_go(
    tmp_path, monkeypatch, capsys, args, message
):
    """nnexp's own main(), in this process: argparse's answer (its usage, then the error) becomes one line."""
    from nnexp.cli.command import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.argv", ["nnexp", *args])
    with pytest.raises(SystemExit) as stopped:
        main()
    assert stopped.value.code == 2
    stderr = capsys.readouterr().err
    assert stderr.startswith("nnexp: error: ") and len(stderr.strip().splitlines()) == 1
    assert message in stderr and "flags such as -m go before the overrides (nnexp -m key=a,b)" in stderr
    assert list(tmp_path.iterdir()) == []


def test_hydra_full_error_adds_the_trace_and_keeps_the_exit_code(tmp_path):
    result = run_nnexp("optim.lrr=0.1", cwd=tmp_path, env={"HYDRA_FULL_ERROR": "1"})
    assert result.returncode == 2
    assert "Traceback" in result.stderr and "unknown key optim.lrr" in result.stderr


def test_a_launcher_whose_hydra_plugin_is_missing_names_what_was_typed_and_the_install(monkeypatch):
    """hydra/launcher=gpus builds on Hydra's joblib plugin: without nnexp's sweep extra, say so."""
    from hydra.errors import MissingConfigException

    from nnexp.cli.mistakes import missing_option_message

    monkeypatch.setattr("sys.argv", ["nnexp", "-m", "hydra/launcher=gpus", "seed=0,1"])
    missing = MissingConfigException(
        "Could not find 'hydra/launcher/joblib'", missing_cfg_file="hydra/launcher/joblib",
        options=["gpus", "parallel", "slurm"],
    )  # fmt: skip
    message = missing_option_message(missing)
    assert message == "hydra/launcher=gpus needs Hydra's joblib plugin, which is not installed: " + (
        "pip install -e '.[sweep]'"
    )
