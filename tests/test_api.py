"""The Python API: the README's notebook example runs as written; `import nnexp` stays light."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import nnexp
from conftest import read_summary

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def readme_python_example() -> str:
    section = README.split("## From Python and notebooks", 1)[1].split("\n## ", 1)[0]
    [example] = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    return example


def test_the_readmes_notebook_example_runs_as_written(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", readme_python_example()],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    status, accuracy = result.stdout.splitlines()[-2].split()[-2:]
    run_dir = tmp_path / result.stdout.splitlines()[-1].strip()
    assert status == "completed" and float(accuracy) > 0.5
    assert read_summary(run_dir)["metrics"]["final"]["test_accuracy"] == float(accuracy)
    assert (run_dir / "learning_curves.png").is_file() and (run_dir / ".hydra" / "overrides.yaml").is_file()


def test_run_returns_metrics_the_trained_model_and_its_folder(tmp_path):
    import torch

    result = nnexp.run(["trainer.epochs=1", "model.hidden=[16]"], output_dir=tmp_path / "run")
    assert result.run_dir == tmp_path / "run" and result.status == "completed"
    assert result.metrics == read_summary(result.run_dir)["metrics"]["final"]
    saved = torch.load(result.run_dir / "checkpoint.pt", weights_only=True)["model"]
    for name, tensor in result.model.state_dict().items():
        assert torch.equal(tensor, saved[name]), name
    assert "epoch 1/1" in (result.run_dir / "nnexp.log").read_text()


def test_a_folder_is_let_go_once_run_returns_so_a_terminal_may_resume_it(tmp_path):
    """The notebook's process goes on after nnexp.run: it must not hold the folder's lock until it ends."""
    import fcntl
    import os

    folder = nnexp.run(["trainer.epochs=1", "model.hidden=[8]"], output_dir=tmp_path / "run").run_dir
    descriptor = os.open(folder, os.O_RDONLY)  # a new open file: flock is not shared with this process's
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)  # BlockingIOError while the run's lock is held
    finally:
        os.close(descriptor)


def test_import_nnexp_and_the_help_import_neither_torch_nor_matplotlib():
    code = (
        "import sys, nnexp\n"
        "assert 'torch' not in sys.modules, 'import nnexp pulled in torch'\n"
        "sys.argv = ['nnexp', '--help']\n"
        "from nnexp.cli.entry import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "heavy = [name for name in ('torch', 'matplotlib', 'pandas') if name in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "logger" in result.stdout and "hparams_search" in result.stdout  # the new groups are listed
