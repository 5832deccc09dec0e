"""Shared helpers: the real CLI in a subprocess, real Hydra composition, data files written per test."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

# Idle OpenMP threads sleep instead of spinning: on a machine whose cores are busy (a shared CI runner, the
# suite beside other work) spinning threads fight the ones doing the work, and torch's loops slow several
# times over. Set before torch is imported here or in any run the tests start; the results do not change.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# One torch thread in every run the tests start, however busy the machine: trainer.threads=auto takes fewer
# threads when other work holds the cores, and a result's last digits depend on the count, so two runs a
# test compares could otherwise differ (OMP_NUM_THREADS is the most auto takes, as a CI runner's would be).
os.environ.setdefault("OMP_NUM_THREADS", "1")

from hydra import compose, initialize_config_dir  # noqa: E402
from omegaconf import DictConfig

from nnexp.cli.hydra_hooks import register_resolvers
from nnexp.paths import CONFIG_DIR

NNEXP = [shutil.which("nnexp")] if shutil.which("nnexp") else [sys.executable, "-m", "nnexp"]


def run_nnexp(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run the installed `nnexp` command in `cwd` (its outputs/ lands there) and capture its output."""
    environment = {key: value for key, value in os.environ.items() if key != "HYDRA_FULL_ERROR"}
    environment.update(env or {})
    return subprocess.run(
        [*NNEXP, *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def run_folders(root: Path) -> list[Path]:
    """Every run folder under root/outputs (a folder holding Hydra's .hydra/), oldest name first."""
    return sorted(path.parent for path in (root / "outputs").rglob(".hydra"))


def read_summary(run_folder: Path) -> dict:
    return json.loads((run_folder / "summary.json").read_text())


def compose_config(*overrides: str) -> DictConfig:
    """The config `nnexp OVERRIDES...` would run, composed by Hydra from the real config files."""
    register_resolvers()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


FISH_HEADER = "Species,Weight,Length1,Length2,Length3,Height,Width"


def write_fish_csv(path: Path, rows: int = 80, seed: int = 0, noise: float = 40) -> Path:
    """A fish-market-shaped CSV with a byte-order mark, Weight linear in Height and Width plus noise
    (standard deviation `noise` grams)."""
    import random

    rng = random.Random(seed)
    lines = [FISH_HEADER]
    for _ in range(rows):
        height, width = rng.uniform(2, 18), rng.uniform(1, 8)
        length = rng.uniform(10, 60)
        weight = 30 * height + 90 * width - 250 + rng.gauss(0, noise)
        lines.append(
            f"Bream,{weight:.1f},{length:.1f},{length + 2:.1f},{length + 4:.1f},{height:.4f},{width:.4f}"
        )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8-sig")
    return path


@pytest.fixture
def fish_csv(tmp_path: Path) -> Path:
    return write_fish_csv(tmp_path / "Fish.csv")


def start_then_signal(tmp_path: Path, signum: int, rows: int, *args: str) -> Path:
    """Start a run in tmp_path/run; once metrics.csv holds `rows` rows, send `signum`."""
    folder = tmp_path / "run"
    process = subprocess.Popen([*NNEXP, *args, f"hydra.run.dir={folder}"], cwd=tmp_path,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 180
    metrics = folder / "metrics.csv"
    while not (metrics.exists() and metrics.read_text().count("\n") > rows):
        assert process.poll() is None and time.monotonic() < deadline, process.stderr.read()
        time.sleep(0.005)
    process.send_signal(signum)
    process.communicate(timeout=120)
    return folder


# --- finished runs shared by the whole session --------------------------------------------------------
# Training a run costs seconds; reading one back costs milliseconds. A test that only reads a finished run
# (its files, its model, a resume of a copy) takes it from here: each distinct set of overrides is trained
# once per pytest session, in this process through nnexp.run, and handed out as a copy the test may damage.


@pytest.fixture(scope="session")
def session_runs(tmp_path_factory):
    """`session_runs(*overrides)`: the folder of a finished run of `nnexp OVERRIDES`, trained once per
    session. Read it only; `copy_run` gives a copy to change."""
    import nnexp

    root = tmp_path_factory.mktemp("session_runs")
    trained: dict[tuple[str, ...], Path] = {}

    def get(*overrides: str) -> Path:
        if overrides not in trained:
            folder = root / f"run{len(trained)}"
            result = nnexp.run(list(overrides), output_dir=folder)
            assert result.status == "completed", (overrides, result.status)
            trained[overrides] = folder
        return trained[overrides]

    return get


def copy_run(run: Path, destination: Path) -> Path:
    """A copy of a run folder (files, times and modes kept) that a test may change or damage."""
    shutil.copytree(run, destination, symlinks=True)
    return destination


# --- what an in-process run prints -------------------------------------------------------------------
# The `nnexp` command prints into a pipe through rich at 160 columns (nnexp/cli/command.py); nnexp.run
# prints through rich's global console. `piped_console()` makes that console 160 columns wide for one test
# and returns a function that reads back what was printed (capsys), so a console check reads the lines a
# CLI run would print, without starting a process.


@pytest.fixture
def piped_console(monkeypatch, capsys):
    import rich
    from rich.console import Console

    monkeypatch.setattr(rich, "_console", Console(width=160, soft_wrap=False))

    def printed() -> str:
        captured = capsys.readouterr()
        return captured.out + captured.err

    return printed


# --- how many tests start the nnexp command in a subprocess -------------------------------------------
# Each costs seconds of interpreter and torch start-up; the suite keeps them for what is about the process
# (exit codes, signals, locks, the console in a pipe). Every process started from a test (or a fixture it
# set up) that runs one of nnexp's commands is counted, and the total is printed after the run.

CLI_COMMANDS = ("nnexp", "nnexp-predict", "nnexp-report", "nnexp-generate")
_tests_that_started_the_cli: set[str] = set()
_running_test: list[str] = []
_popen_init = subprocess.Popen.__init__


def starts_the_cli(args) -> bool:
    """Whether a subprocess runs nnexp: a console script, `python [-X ...] -m nnexp...`, or `python -c`
    code that imports nnexp (the start-up checks)."""
    argv = [args] if isinstance(args, (str, bytes, os.PathLike)) else list(args)
    if not argv:
        return False
    if Path(os.fsdecode(argv[0])).name in CLI_COMMANDS:
        return True
    words = [os.fsdecode(word) if isinstance(word, (bytes, os.PathLike)) else str(word) for word in argv]
    follows = dict(zip(words, words[1:], strict=False))
    return follows.get("-m", "").split(".")[0] == "nnexp" or "nnexp" in follows.get("-c", "")


def _counting_popen_init(self, args, *rest, **options):
    if _running_test and starts_the_cli(args):
        _tests_that_started_the_cli.add(_running_test[-1])
    _popen_init(self, args, *rest, **options)


subprocess.Popen.__init__ = _counting_popen_init


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    _running_test.append(item.nodeid)
    yield
    _running_test.pop()


def pytest_sessionfinish(session):
    workeroutput = getattr(session.config, "workeroutput", None)  # a pytest-xdist worker: tell the controller
    if workeroutput is not None:
        workeroutput["tests_that_started_the_cli"] = sorted(_tests_that_started_the_cli)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    _tests_that_started_the_cli.update(
        getattr(node, "workeroutput", {}).get("tests_that_started_the_cli", [])
    )


def pytest_terminal_summary(terminalreporter):
    terminalreporter.write_line(
        f"tests that started an nnexp command in a subprocess: {len(_tests_that_started_the_cli)}"
    )


# --- resuming in this process ------------------------------------------------------------------------


def resume_in_process(run_dir: Path, *overrides: str):
    """What `nnexp resume=RUN_DIR OVERRIDES...` runs (nnexp/cli/command.py's main), in this process: the
    saved config with the changes, the folder refused if unwritable, then the run resumed. Returns the
    RunResult; raises the UserError the command prints in one line (its exit code: `error.exit_code`)."""
    from nnexp.runs.folder import refuse_unwritable
    from nnexp.runs.resume import resume_config
    from nnexp.runs.run import run

    folder, cfg = resume_config([f"resume={run_dir}", *overrides])
    refuse_unwritable(folder, f"resume with: nnexp resume={folder}")
    return run(cfg, folder, resume=True)


# --- torch's threads, test by test -----------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _torch_threads_restored():
    """A run in this process with trainer.threads=N (the language-model presets set 1) sets this process's
    torch threads, as it sets a CLI run's: each test hands the next the thread count it found."""
    import torch

    before = torch.get_num_threads()
    yield
    if torch.get_num_threads() != before:
        torch.set_num_threads(before)


def exit_code_of(main, *args: object) -> int:
    """A tool's `main(ARGS)` in this process, as its command runs it: the exit code it would leave with
    (what it prints stays in capsys)."""
    try:
        main([str(arg) for arg in args])
    except SystemExit as stop:
        return int(stop.code or 0)
    return 0


# --- the nnexp command's own main(), in this process ------------------------------------------------------


def nnexp_exit_code(monkeypatch, *args: object) -> int:
    """`nnexp ARGS` through nnexp/cli/command.py's main() in this process, for a command refused before it
    runs anything (the preflight, a resume or a sweep resume refused): the exit code it would leave with;
    its one line stays in capsys. A command that gets past its checks to Hydra or to a run fails the test:
    a process (run_nnexp) or nnexp.run checks those."""
    import rich
    from rich.console import Console

    from nnexp.cli import command
    from nnexp.sweep.workers import SWEEP_PID_ENV

    def got_past_its_checks(*_: object, **__: object) -> None:
        pytest.fail(f"nnexp {' '.join(map(str, args))} was not refused: it went on to run")

    monkeypatch.setattr("sys.argv", ["nnexp", *map(str, args)])
    monkeypatch.setenv(SWEEP_PID_ENV, str(os.getpid()))  # main() sets it: given back after the test
    monkeypatch.setattr(rich, "_console", Console(width=160))  # main() may reconfigure the console
    monkeypatch.setattr(command, "_hydra_main", got_past_its_checks)
    monkeypatch.setattr(command, "_run_or_exit", got_past_its_checks)
    monkeypatch.setattr("nnexp.runs.resume.log_into", got_past_its_checks)  # where a resume starts its run
    with pytest.raises(SystemExit) as stopped:
        command.main()
    return int(stopped.value.code or 0)


@pytest.fixture
def drawn_here(monkeypatch):
    """Every picture drawn in this process, as where no child can be forked (nnexp/forked.py): for a test
    that reads the matplotlib Figures a run draws. (tests/test_pictures_beside_the_curves.py: the child.)"""
    from nnexp import forked

    monkeypatch.setattr(forked, "_can_fork", lambda: False)
