"""A sweep is checked whole before its first job, nnexp.run answers as the command line does, and the
refusals of issue 23 (a bad lr_find setting, a prefix of no known character, misleading messages) are
one line that names the value and the fix.

In-process (preflight, api, the checks, on real configs) except where the process itself is the point:
the exit code, stderr and the folders of `nnexp -m ... optim.lr=0.01,-5,0.1` and `nnexp -m --cfg job`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

import nnexp
from conftest import compose_config, nnexp_exit_code, run_nnexp
from nnexp.cli import preflight as preflight_module
from nnexp.cli.preflight import preflight
from nnexp.config.checks import check_config
from nnexp.errors import ConfigError, DataError

LR_MINUS_5 = "optim.lr=-5 is not allowed: use a finite number > 0 (e.g. optim.lr=0.01)"


@pytest.fixture
def in_tmp(tmp_path, monkeypatch) -> Path:
    """Run in an empty folder, so that anything created shows."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


# ---- a grid sweep (Hydra's basic sweeper) ------------------------------------------------------------


def test_a_value_one_job_of_a_sweep_would_refuse_stops_the_sweep_before_anything_exists(in_tmp):
    with pytest.raises(ConfigError) as error:
        preflight(["trainer.epochs=1", "optim.lr=0.01,-5,0.1"], multirun=True)
    assert str(error.value) == f"{LR_MINUS_5} (sweep job 2 of 3: optim.lr=-5)"
    assert error.value.key == "optim.lr"
    assert list(in_tmp.iterdir()) == []


def test_the_same_value_alone_is_refused_with_the_same_words(in_tmp):
    with pytest.raises(ConfigError, match="^" + LR_MINUS_5.replace("(", r"\(").replace(")", r"\)") + "$"):
        preflight(["trainer.epochs=1", "optim.lr=-5"])


def test_jobs_are_numbered_and_named_as_hydras_basic_sweeper_orders_them():
    with pytest.raises(ConfigError, match=r"\(sweep job 2 of 4: optim=sgd optim.lr=-1\)$"):
        preflight(["optim=sgd,adam", "optim.lr=0.1,-1", "trainer.epochs=1"], multirun=True)


def test_a_value_only_some_jobs_cannot_compose_names_the_first_of_them():
    with pytest.raises(ConfigError) as error:
        preflight(["optim=sgd,adam", "optim.momentum=0.5,0.9"], multirun=True)
    message = str(error.value)
    assert message.startswith("unknown key optim.momentum")  # adam has betas, not momentum
    assert message.endswith("(sweep job 3 of 4: optim=adam optim.momentum=0.5)")


def test_each_combination_is_checked_not_just_each_value():
    """nesterov=true is sound, and so is momentum=0; together (job 4) they are not."""
    sweep = ["optim=sgd", "optim.nesterov=false,true", "optim.momentum=0.9,0.0"]
    with pytest.raises(ConfigError) as error:
        preflight(sweep, multirun=True)
    assert str(error.value).startswith("optim.nesterov=true needs momentum > 0")
    # Named as Hydra names the job (in its overrides and the ledger): True, as the sweeper writes it.
    assert str(error.value).endswith("(sweep job 4 of 4: optim.nesterov=True optim.momentum=0.0)")


def test_a_sound_sweep_passes_and_creates_nothing(in_tmp):
    preflight(["optim=sgd,adam", "optim.lr=0.01,0.1", "trainer.epochs=1"], multirun=True)
    assert list(in_tmp.iterdir()) == []


def test_jobs_that_choose_the_same_options_are_composed_once(monkeypatch):
    """Composing a config takes ~0.1 s; a job that differs only in values reuses its options' config."""
    composed = []
    compose = preflight_module._compose
    monkeypatch.setattr(preflight_module, "_compose", lambda *args: composed.append(args) or compose(*args))
    preflight(["optim=sgd,adam", "seed=range(0,50)", "trainer.epochs=1"], multirun=True)  # 100 jobs
    assert len(composed) == 2  # the first job (to read the sweeper: sgd's options, kept), then adam's


def test_a_job_is_checked_on_the_config_hydra_composes_for_it():
    job = ["optim=sgd", "optim.momentum=0.9", "seed=3", "model.hidden=[8]", "+lr_find=exponential"]
    with preflight_module.config_dir():
        checked = preflight_module._JobComposer(job)(job)
    expected = compose_config(*job)
    assert OmegaConf.to_container(checked) == OmegaConf.to_container(expected)
    assert OmegaConf.is_struct(checked)  # a key the config lacks is refused, as by Hydra


def test_a_sweep_jobs_overrides_are_checked_in_the_order_hydra_sets_them(in_tmp):
    preflight(["seed=0,1", "optim.lr=-1", "++optim.lr=0.01", "trainer.epochs=1"], multirun=True)  # 0.01 wins
    with pytest.raises(ConfigError, match=r"optim.lr=-1 is not allowed.*\(sweep job 1 of 2: seed=0\)"):
        preflight(["seed=0,1", "++optim.lr=0.01", "optim.lr=-1", "trainer.epochs=1"], multirun=True)
    assert list(in_tmp.iterdir()) == []


def test_a_job_sharing_the_first_points_options_gets_its_own_values_on_them():
    first = ["optim=sgd", "optim.momentum=0.9", "seed=3", "trainer.epochs=4"]
    job = ["optim=sgd", "optim.momentum=0.5", "seed=7", "trainer.epochs=2"]
    with preflight_module.config_dir():
        composer = preflight_module._JobComposer(first)
        assert composer.whole(first).hydra.runtime.choices.optim == "sgd"  # Hydra's node kept
        checked = composer(job)
    assert OmegaConf.to_container(checked) == OmegaConf.to_container(compose_config(*job))


def test_a_grid_too_big_to_check_job_by_job_is_checked_value_by_value(monkeypatch):
    monkeypatch.setattr(preflight_module, "EVERY_JOB_UP_TO", 10)  # 500 in use: here 40 jobs are too many
    checked = []
    check = preflight_module.check_job
    monkeypatch.setattr(preflight_module, "check_job", lambda cfg: checked.append(1) or check(cfg))
    preflight(["seed=range(0,20)", "optim.lr=0.1,0.01"], multirun=True)
    assert len(checked) == 1 + 19 + 1  # every value of each swept key once, not 40 jobs
    checked.clear()
    with pytest.raises(ConfigError, match=r"\(sweep job 2 of 40: seed=0 optim.lr=-1\)$"):
        preflight(["seed=range(0,20)", "optim.lr=0.1,-1"], multirun=True)
    assert len(checked) == 2  # the keys with the fewest values first: a mistake is found at once


def test_a_range_in_a_grid_sweep_says_only_a_search_samples_one():
    with pytest.raises(ConfigError, match=r"optim.lr=interval\(0.1,1\) is a range, which only a search"):
        preflight(["optim.lr=interval(0.1,1)"], multirun=True)


def test_several_values_without_m_still_say_to_sweep_with_m():
    with pytest.raises(ConfigError, match="optim.lr=0.01,0.1 gives several values: to run each, sweep"):
        preflight(["optim.lr=0.01,0.1"])


# ---- an Optuna search (hparams_search=..., hydra.sweeper.params) -------------------------------------


def test_the_search_preset_passes_as_it_is(in_tmp):
    preflight(["hparams_search=digits_optuna"])
    assert list(in_tmp.iterdir()) == []


@pytest.mark.parametrize(
    ("space", "message"),
    [
        (
            "optim.lr=interval(0.1, 0.01)",
            r"^optim.lr=interval\(0.1, 0.01\) runs from 0.1 down to 0.01: an interval gives its low end",
        ),
        (
            "optim.lr=tag(log, interval(0, 0.01))",
            r"is sampled on a log scale, which needs both ends > 0",
        ),
        (  # an interval whose low end reaches a value the key refuses
            "optim.lr=interval(0, 0.01)",
            r"^optim.lr=0.0 is not allowed: .* \(search of 6 trials: optim.lr=0 \(the low end of interval",
        ),
        (  # a choice of the search space that the key refuses
            "model.hidden=choice([32],[0])",
            r"^model.hidden=\[0\] is not allowed: .*\(search of 6 trials: model.hidden=\[0\]\)$",
        ),
        (  # Optuna samples an interval as floats: a whole-number key takes a choice or a range
            "trainer.epochs=interval(1, 5)",
            r"^trainer.epochs=1.0 is not allowed: use a whole number",
        ),
    ],
)
def test_a_search_space_is_checked_range_by_range(space, message):
    with pytest.raises(ConfigError, match=message):
        preflight(["hparams_search=digits_optuna", space])


def test_an_intervals_top_is_not_sampled_so_it_may_be_a_value_the_key_refuses():
    """momentum must be below 1; interval(0.5, 1.0) samples [0.5, 1.0)."""
    preflight(["hparams_search=digits_optuna", "optim=sgd", "optim.momentum=interval(0.5, 1.0)"])


# ---- the learning-rate range test's settings ----------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["lr_find.num_steps=-1"], "lr_find.num_steps=-1 is not allowed: use a whole number >= "),
        (
            ["lr_find.start_lr=10", "lr_find.end_lr=1"],
            "lr_find.end_lr=1 is not allowed: use a finite number above",
        ),
        (["lr_find.smoothing=1"], "lr_find.smoothing=1 is not allowed: use a number in [0, 1)"),
    ],
)
def test_bad_lr_find_settings_are_refused_by_the_config_checks_before_anything_is_printed(
    overrides, message, capsys
):
    cfg = compose_config("+lr_find=exponential", *overrides)
    with pytest.raises(ConfigError) as error:
        check_config(cfg)
    assert str(error.value).startswith(message)
    with pytest.raises(ConfigError):
        preflight(["+lr_find=exponential", *overrides])
    assert capsys.readouterr().out == ""  # no data summary, no layer table


def test_lightnings_names_for_the_range_test_are_pointed_to_nnexps():
    with pytest.raises(ConfigError, match=r"unknown key lr_find.min_lr \(did you mean lr_find.start_lr\?\)"):
        preflight(["+lr_find=exponential", "lr_find.min_lr=10"])


# ---- `nnexp -m --cfg job` ------------------------------------------------------------------------------


def test_printing_a_config_and_running_a_sweep_at_once_is_one_line_naming_a_job_to_print():
    from hydra._internal.utils import get_args_parser

    from nnexp.cli.usage import one_command_at_a_time

    args = get_args_parser().parse_args(["-m", "--cfg", "job", "seed=0,1", "optim=sgd"])
    assert one_command_at_a_time(args) == (
        "--cfg prints one config and -m runs a sweep: give one of them; to see a sweep job's config, "
        "give that job's values without -m (nnexp --cfg job seed=0 optim=sgd)"
    )
    assert one_command_at_a_time(get_args_parser().parse_args(["--cfg", "job", "seed=0"])) is None
    assert one_command_at_a_time(get_args_parser().parse_args(["-m", "seed=0,1"])) is None


# ---- nnexp.run answers as the command line does --------------------------------------------------------


def test_a_typo_through_the_python_api_is_the_command_lines_config_error(in_tmp):
    with pytest.raises(ConfigError) as from_python:
        nnexp.run(["trainer.epoch=1"])
    with pytest.raises(ConfigError) as from_the_command_line:
        preflight(["trainer.epoch=1"])
    assert str(from_python.value) == str(from_the_command_line.value)
    assert "(did you mean trainer.epochs?)" in str(from_python.value)
    assert list(in_tmp.iterdir()) == []


def test_a_string_instead_of_a_list_of_overrides_is_a_type_error_that_shows_the_list(in_tmp):
    with pytest.raises(TypeError, match=r"a list of overrides, not a string: write \['trainer.epochs=1'\]"):
        nnexp.run("trainer.epochs=1")
    with pytest.raises(TypeError, match="each override is a string"):
        nnexp.run(["trainer.epochs", 1])
    assert list(in_tmp.iterdir()) == []


def test_hydra_run_dir_names_the_run_folder_as_on_the_command_line(in_tmp):
    result = nnexp.run(["debug=smoke", "hydra.run.dir=mine/run"])
    assert result.status == "completed"
    assert result.run_dir == in_tmp / "mine" / "run"
    # As Hydra's overrides.yaml: the run's own overrides, not Hydra's settings.
    assert OmegaConf.load(result.run_dir / ".hydra" / "overrides.yaml") == ["debug=smoke"]
    assert sorted(path.name for path in in_tmp.iterdir()) == ["mine"]
    for inside in ("mine/run", "mine/run/inner", "mine"):  # never over, into or around a run
        with pytest.raises(ConfigError, match=f"^hydra.run.dir={inside} is or holds or lies inside the run"):
            nnexp.run(["debug=smoke", f"hydra.run.dir={inside}"])
    assert not (in_tmp / "mine" / "run" / "inner").exists()


@pytest.mark.parametrize(
    ("overrides", "output_dir", "message"),
    [
        (["hydra.job.chdir=true"], None, "hydra.job.chdir=true: nnexp.run trains in this process"),
        (["hydra/launcher=parallel"], None, "hydra/launcher=parallel: nnexp.run trains in this process"),
        (["hydra.run.dir=runs/${now:%H}"], None, r"nnexp.run takes the run folder named outright"),
        (["hydra.run.dir=a"], "b", "hydra.run.dir=a and output_dir=b name two run folders: give one"),
    ],
)
def test_hydras_other_settings_are_refused_not_ignored(in_tmp, overrides, output_dir, message):
    with pytest.raises(ConfigError, match=message.replace("$", r"\$").replace("{", r"\{")):
        nnexp.run(["debug=smoke", *overrides], output_dir=output_dir)
    assert list(in_tmp.iterdir()) == []


def test_a_run_folder_under_a_file_is_refused_before_anything_is_made(in_tmp):
    (in_tmp / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="notes.txt is a file, not a folder"):
        nnexp.run(["debug=smoke", "hydra.run.dir=notes.txt/run"])
    assert sorted(path.name for path in in_tmp.iterdir()) == ["notes.txt"]


# ---- nnexp-generate's prefix ---------------------------------------------------------------------------


@pytest.fixture
def char_model_run(tmp_path) -> Path:
    """A folder nnexp-generate reads up to the model: a char vocabulary, as a time_machine run writes it."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.pt").write_bytes(b"")  # the prefix is refused before the model is loaded
    tokens = ["<unk>", " ", "e", "t", "a", "i", "n", "o", "s", "h", "r", "d", "l", "m", "u", "c", "v", "w"]
    tokenizer = {"token": "char", "replace": "[^A-Za-z]+", "lowercase": True}
    (run / "vocab.json").write_text(json.dumps({"tokens": tokens, "tokenizer": tokenizer}))
    return run


@pytest.mark.parametrize("prefix", ["", "   ", "\x00\x01\x7f", "время машина", "1234"])
def test_a_prefix_of_no_known_character_is_refused_naming_what_the_vocabulary_knows(
    char_model_run, prefix, capsys
):
    from nnexp.look.generate import main

    with pytest.raises(SystemExit) as leaving:
        main([str(char_model_run), "--prefix", prefix])
    assert leaving.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.strip().splitlines()) == 1
    assert "has no character this run's vocabulary knows" in captured.err
    assert "it knows ' ', 'e', 't', 'a', 'i', 'n', 'o', 's', 'h', 'r', 'd', 'l' and 5 more" in captured.err
    assert captured.err.endswith("e.g. --prefix 'time traveller'\n")  # the fix, in characters it knows


# ---- messages that said the wrong thing ------------------------------------------------------------------


def test_resuming_into_another_folder_says_a_resumed_run_stays_in_its_own(tmp_path):
    from nnexp.runs.resume import resume_config

    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    OmegaConf.save(compose_config("debug=smoke"), run / ".hydra" / "config.yaml")
    with pytest.raises(ConfigError) as error:
        resume_config([f"resume={run}", "hydra.run.dir=elsewhere"])
    assert str(error.value) == (
        f"cannot resume with hydra.run.dir=elsewhere: a resumed run stays in its own folder ({run}) with "
        f"the Hydra settings it started with; leave out hydra.run.dir=elsewhere, or start a new run to "
        f"train elsewhere"
    )
    with pytest.raises(ConfigError, match=r"has no key trainer.epochz \(a typo\?\)"):
        resume_config([f"resume={run}", "trainer.epochz=3"])


def test_a_target_with_one_value_is_told_it_needs_two_not_to_be_dropped(tmp_path):
    from nnexp.data.tabular import load_csv

    path = tmp_path / "one_class.csv"
    path.write_text("a,b,label\n" + "".join(f"{i},{i % 3},1\n" for i in range(20)))
    with pytest.raises(DataError) as error:
        load_csv(str(path), ["a", "b"], "label", 0.2, 0, 0.0, normalize_target=True)
    message = str(error.value)
    assert message.startswith("target column 'label' holds the one value 1 in the training rows")
    assert "a classifier at least two classes" in message and "drop it" not in message


def test_a_column_missing_from_a_2000_column_csv_is_named_in_a_short_line(tmp_path):
    from nnexp.data.tabular import read_numeric_columns

    names = [f"feature_{i:04d}" for i in range(2000)]
    path = tmp_path / "wide.csv"
    path.write_text(",".join([*names, "y"]) + "\n" + ",".join(["1"] * 2001) + "\n")
    with pytest.raises(DataError) as error:
        read_numeric_columns(path, ["featur_0002", "y"])
    message = str(error.value)
    assert "(did you mean 'feature_0002'?)" in message
    assert message.endswith("feature_0007, ... and 1993 more") and len(message) < 400


# ---- the process: exit code, one line, nothing made --------------------------------------------------------


def test_the_cli_refuses_a_sweep_with_one_bad_value_before_its_first_job(tmp_path):
    result = run_nnexp("-m", "trainer.epochs=1", "optim.lr=0.01,-5,0.1", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == f"nnexp: error: {LR_MINUS_5} (sweep job 2 of 3: optim.lr=-5)\n"
    assert list(tmp_path.iterdir()) == []  # no outputs/, no sweep folder, no job trained


def test_the_cli_answers_cfg_with_m_in_one_line(tmp_path, monkeypatch, capsys):
    """The command's main() in this process (a usage refusal's exit code and line in a process:
    tests/test_usage_errors.py::test_the_cli_exits_2_with_one_line_and_no_run_folder)."""
    monkeypatch.chdir(tmp_path)
    assert nnexp_exit_code(monkeypatch, "-m", "--cfg", "job", "seed=0,1") == 2
    printed = capsys.readouterr()
    assert printed.err.startswith("nnexp: error: --cfg prints one config and -m runs a sweep")
    assert len(printed.err.strip().splitlines()) == 1 and printed.out == ""
    assert list(tmp_path.iterdir()) == []


def test_a_runs_config_is_checked_once_though_the_check_and_the_run_both_ask(tmp_path, monkeypatch):
    """nnexp.run checks the config before any folder exists, and the run's start asks again (a sweep job's
    sampled values are first seen there): the one door, config/job.py, checks a config it passed once."""
    from nnexp.config import job

    checked = []
    check = job.check_config
    monkeypatch.setattr(job, "check_config", lambda cfg: checked.append(1) or check(cfg))
    monkeypatch.setattr(job, "_PASSED", set())  # what earlier tests in this process checked
    nnexp.run(["trainer.epochs=1", "model.hidden=[8]"], output_dir=tmp_path / "run")
    assert len(checked) == 1
    with pytest.raises(ConfigError, match=r"^optim.lr=-1 is not allowed"):
        nnexp.run(["trainer.epochs=1", "optim.lr=-1"], output_dir=tmp_path / "refused")
    assert len(checked) == 2  # a refused config is not remembered: asked again, it is refused again
