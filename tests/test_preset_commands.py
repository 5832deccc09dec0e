"""A preset that trains on a file the user makes says, when the file is not named, the exact command that
makes it and runs the preset; that command works as written."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

import nnexp
from conftest import nnexp_exit_code
from nnexp.cli.preset_command import preset_command
from nnexp.errors import ConfigError
from nnexp.paths import CONFIG_DIR

MAKE_THEIR_DATA = sorted(
    f"lectures/{path.stem}"
    for path in (Path(CONFIG_DIR) / "experiment" / "lectures").glob("*.yaml")
    if "(first: " in path.read_text()
)


def test_the_presets_that_need_a_file_made_first_are_found():
    assert "lectures/gp_relu" in MAKE_THEIR_DATA and "lectures/one_example" in MAKE_THEIR_DATA
    assert len(MAKE_THEIR_DATA) >= 7  # gp_linear, gp_linear_linear, gp_relu, gp_tanh, gp_three/five_layers


@pytest.mark.parametrize("experiment", MAKE_THEIR_DATA)
def test_the_refusal_names_the_command_that_makes_the_data(tmp_path, monkeypatch, capsys, experiment):
    monkeypatch.chdir(tmp_path)
    assert nnexp_exit_code(monkeypatch, f"experiment={experiment}") == 2
    command = preset_command(experiment)
    assert command.endswith(f"nnexp experiment={experiment} data.path={command.split()[-1].split('=')[1]}")
    line = capsys.readouterr().err.strip()
    assert line == f"nnexp: error: data.path is required: experiment={experiment} runs as: {command}"
    assert list(tmp_path.iterdir()) == []  # refused: nothing made


@pytest.mark.parametrize("experiment", ["lectures/gp_relu", "lectures/one_example"])  # the two data commands
def test_the_command_the_refusal_names_runs_as_written(tmp_path, monkeypatch, experiment):
    monkeypatch.chdir(tmp_path)
    make, run = preset_command(experiment).split(" && ")
    # The first half as a shell runs it (printf, python -m ...), with this interpreter as `python`.
    shell_env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    subprocess.run(make, shell=True, check=True, cwd=tmp_path, env=shell_env, capture_output=True)
    args = shlex.split(run)[1:]
    result = nnexp.run([*args, "trainer.epochs=2", "trainer.eval_every=1", "outputs.views=false"])
    assert result.status == "completed"


def test_through_nnexp_run_the_refusal_is_the_same(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="runs as: python -m nnexp.data.curve curve.csv && nnexp"):
        nnexp.run(["experiment=lectures/gp_tanh"])
    assert list(tmp_path.iterdir()) == []
