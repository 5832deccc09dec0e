"""The README and the docs site stay true: CI runs the README's set-up commands, every nnexp command the
README or a docs page shows composes, and every test the promises name exists."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from conftest import compose_config, run_nnexp
from nnexp.cli.preflight import preflight

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
# The reference moved from the README to the docs site (mkdocs.yml): its commands keep the same rule.
DOCS = {path.relative_to(ROOT).as_posix(): path.read_text() for path in sorted((ROOT / "docs").glob("*.md"))}
BASH_BLOCKS = [
    block for text in (README, *DOCS.values()) for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S)
]


def setup_commands() -> list[str]:
    setup = README.split("## Set-up", 1)[1].split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"```bash\n(.*?)```", setup, flags=re.S)]


def test_the_readme_opens_with_an_install_and_run_command_and_an_install_and_test_command():
    run, test = setup_commands()
    assert "pip install" in run and run.endswith("nnexp")
    assert "pip install" in test and "pytest" in test


def test_ci_runs_both_readme_commands_as_written_in_a_new_virtual_environment():
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    run, test = setup_commands()
    assert run in ci and test in ci
    made = next(i for i, line in enumerate(ci) if line.startswith("python3 -m venv "))
    activated = next(i for i, line in enumerate(ci) if line.startswith("source ") and "/bin/activate" in line)
    assert made < activated < ci.index(run) < ci.index(test)


def shown_nnexp_commands() -> list[str]:
    lines = [line.split("#")[0].strip() for block in BASH_BLOCKS for line in block.splitlines()]
    # `resume=$RUN` needs a run folder of the reader's: tests/test_safety.py covers resuming.
    # `A && nnexp ...` (the README's lectures: make the data, then run) is checked from its nnexp on.
    lines = [line.split("&& ", 1)[1] if " && nnexp " in line else line for line in lines]
    return list(dict.fromkeys(line for line in lines if line.startswith("nnexp ") and "resume=" not in line))


@pytest.mark.parametrize("command", shown_nnexp_commands())
def test_every_nnexp_command_in_the_readme_composes(tmp_path, monkeypatch, capsys, command):
    """Each command as the shell hands it to nnexp, checked in this process by what `nnexp` runs before
    Hydra starts: the preflight composes the config (every job of a sweep) and checks every value. That
    the command composes the same config: the test below."""
    args = shlex.split(command)[1:]
    monkeypatch.chdir(tmp_path)
    if "--help" in args:
        from nnexp.cli.command import main

        monkeypatch.setattr("sys.argv", ["nnexp", *args])
        main()  # returns: exit code 0
        assert capsys.readouterr().out.startswith("usage: nnexp")
    else:
        shown = [arg for arg in args if arg not in ("-m", "--cfg", "job")]
        preflight(shown, multirun="-m" in args)  # raises the ConfigError the command would print
    assert list(tmp_path.iterdir()) == []  # nothing run, nothing made


def test_a_readme_command_with_cfg_job_prints_the_config_nnexp_composes(tmp_path):
    """The real command with `--cfg job`, in a process, for one README command with a quoted list on it
    (the config printed is what tests above compose in this process); `experiment=fish_linreg --cfg job`
    through the command's main() in this process: tests/test_cli.py::test_cfg_job_prints_the_composed_..."""
    command = next(line for line in shown_nnexp_commands() if "'model.layers=[{conv:" in line)
    args = shlex.split(command)[1:]
    result = run_nnexp(*args, "--cfg", "job", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert yaml.safe_load(result.stdout) == OmegaConf.to_container(compose_config(*args))
    assert list(tmp_path.iterdir()) == []


def test_every_test_the_promises_name_exists():
    section = DOCS["docs/promises.md"]  # moved from the README's "What nnexp promises"
    named = re.findall(r"`(tests/\w+\.py)::(\w+)`", section)
    assert len(named) >= 30  # the table is really there
    missing = [f"{file}::{name}" for file, name in named if f"def {name}(" not in (ROOT / file).read_text()]
    assert missing == []
