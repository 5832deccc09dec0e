"""Nothing lost on resume: a refused resume, a second process or a folder named outright never changes a
run's files; a forced change is the change training gets. Real run folders, compared byte for byte.

What a resume or a folder check decides is checked in this process, through the functions `nnexp` calls
(nnexp/cli/command.py): `resume_config` and `run(..., resume=True)` for `nnexp resume=...`, `preflight` for
the run and sweep folders a command names. The real command in a subprocess is kept for what only a
process shows: its exit code and one line on stderr, signals, and one process holding a folder another
wants."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import logging
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from conftest import NNEXP, copy_run, nnexp_exit_code, read_summary, run_nnexp
from nnexp.errors import UserError


def fingerprint(folder: Path) -> dict[str, str]:
    """Every file of a run folder with the sha256 of its bytes."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


@pytest.fixture
def run_copy(session_runs, tmp_path) -> Path:
    """A copy of a completed three-epoch run of the default experiment, in this test's own outputs/, to be
    resumed or damaged at will."""
    return copy_run(session_runs("trainer.epochs=3"), tmp_path / "outputs" / "run")


@contextlib.contextmanager
def logging_into(run_dir: Path) -> Iterator[None]:
    """nnexp's records into the run's own nnexp.log while a resume runs, opened at the first record as
    `nnexp resume=` opens it (nnexp.runs.resume.log_into), without taking over this process's logging."""
    from nnexp.runs.folder import RunLogFile

    handler = RunLogFile(run_dir / "nnexp.log", mode="a", delay=True)
    handler.setFormatter(logging.Formatter("[%(asctime)s][%(levelname)s] %(message)s"))
    logger = logging.getLogger("nnexp")
    previous_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous_level)
        handler.close()


def resume(run_dir: Path, *changes: str, console: Console | None = None):
    """`nnexp resume=RUN_DIR CHANGES...` in this process: the steps nnexp/cli/command.py takes, in its order.
    A refusal is the UserError whose message the command prints as its one line."""
    from nnexp.look.end_of_run import DRAWN
    from nnexp.runs.folder import refuse_unwritable
    from nnexp.runs.resume import resume_config
    from nnexp.runs.run import run

    folder, cfg = resume_config([f"resume={run_dir}", *changes])
    refuse_unwritable(folder, f"resume with: nnexp resume={folder}")
    with logging_into(folder):
        return run(cfg, folder, console=console, resume=True, end=DRAWN)


def refusal(error: pytest.ExceptionInfo[UserError]) -> str:
    """The one line a refusal is on the command line, checked to be one line and exit code 2."""
    assert error.value.exit_code == 2, error.value
    message = str(error.value)
    assert message and "\n" not in message
    return message


def refused_resume(run_dir: Path, *changes: str) -> str:
    with pytest.raises(UserError) as refused:
        resume(run_dir, *changes)
    return refusal(refused)


def refused_command(*args: str, multirun: bool = False) -> str:
    """What `nnexp [-m] ARGS` says before any folder is made (nnexp.cli.preflight), as its one line."""
    from nnexp.cli.preflight import preflight

    with pytest.raises(UserError) as refused:
        preflight(list(args), multirun=multirun)
    return refusal(refused)


@pytest.mark.parametrize(
    ("change", "said"),
    [
        (["trainer.epochs=-1", "force=true"], "trainer.epochs=-1 is not allowed"),
        (["trainer.epochs=2", "force=true"], "trainer.epochs=2 is fewer than the 3 epochs"),
        (["optim=sgd", "force=true"], "a resumed run keeps its optim"),
        (["model.hidden=[32]", "trainer.epochs=4", "force=true"], "the checkpoint does not fit what this"),
        (["optim.lrr=0.1", "force=true"], "cannot resume with optim.lrr=0.1"),
        (["optim.lr=0.05"], "add force=true to resume anyway"),
        (["data.val_fraction=0.5", "force=true"], "completed all 3 epochs: a resume trains more of them"),
    ],
)
def test_a_refused_resume_says_why_in_one_line_and_changes_no_file(run_copy, change, said):
    before = fingerprint(run_copy)
    assert said in refused_resume(run_copy, *change)
    assert fingerprint(run_copy) == before


def test_a_refused_resume_is_exit_code_2_and_one_line_on_stderr(run_copy, tmp_path):
    """The process, refused once the run has begun: the checkpoint meets the model it does not fit."""
    before = fingerprint(run_copy)
    change = ["model.hidden=[32]", "trainer.epochs=4", "force=true"]
    result = run_nnexp(f"resume={run_copy}", *change, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("nnexp: error: ") and "the checkpoint does not fit what" in result.stderr
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr
    assert fingerprint(run_copy) == before


def test_a_resume_refused_as_its_saved_config_is_read_is_exit_code_2_and_the_commands_one_line(
    run_copy, tmp_path, monkeypatch, capsys
):
    """`nnexp resume=RUN optim.lr=0.05` through the command's main() in this process: refused before the
    run begins, the line it prints and its exit code (a refused resume as a process: the test above)."""
    before = fingerprint(run_copy)
    monkeypatch.chdir(tmp_path)
    assert nnexp_exit_code(monkeypatch, f"resume={run_copy}", "optim.lr=0.05") == 2
    stderr = capsys.readouterr().err
    assert stderr.startswith("nnexp: error: ") and "add force=true to resume anyway" in stderr
    assert len(stderr.splitlines()) == 1 and "Traceback" not in stderr
    assert fingerprint(run_copy) == before


def test_resuming_a_completed_run_with_nothing_more_to_do_changes_nothing(run_copy):
    before = fingerprint(run_copy)
    printed = io.StringIO()
    result = resume(run_copy, console=Console(file=printed, width=160))
    assert result.status == "completed"
    assert "completed all 3 epochs: nothing to resume" in printed.getvalue()
    assert fingerprint(run_copy) == before


def test_a_forced_learning_rate_is_the_one_training_uses(run_copy):
    assert resume(run_copy, "trainer.epochs=4", "optim.lr=0.05", "force=true").status == "completed"
    rows = list(csv.DictReader((run_copy / "metrics.csv").open()))
    assert [row["epoch"] for row in rows] == ["1", "2", "3", "4"]
    assert float(rows[2]["lr"]) == 0.001 and float(rows[3]["lr"]) == 0.05
    assert "lr: 0.05" in (run_copy / ".hydra" / "config.yaml").read_text()


def test_a_resumed_run_keeps_its_start_and_adds_up_its_time(run_copy):
    first = read_summary(run_copy)
    assert resume(run_copy, "trainer.epochs=4", "force=true").status == "completed"
    resumed = read_summary(run_copy)
    assert resumed["started_at"] == first["started_at"]
    assert len(resumed["resumed_at"]) == 1 and resumed["resumed_from_epoch"] == 3
    assert resumed["wall_time_s"] > first["wall_time_s"]
    assert resumed["epochs_completed"] == 4 and resumed["status"] == "completed"


@pytest.mark.parametrize("damage", ["deleted", "random bytes", "rows cut off", "a row repeated"])
def test_a_resume_rebuilds_a_damaged_metrics_file_from_the_checkpoint(run_copy, damage):
    metrics = run_copy / "metrics.csv"
    recorded = metrics.read_text().splitlines()
    if damage == "deleted":
        metrics.unlink()
    elif damage == "random bytes":
        metrics.write_bytes(bytes(range(256)) * 4)
    elif damage == "rows cut off":
        metrics.write_text("\n".join(recorded[:2]) + "\n")
    else:
        metrics.write_text("\n".join([*recorded, recorded[-1]]) + "\n")
    assert resume(run_copy, "trainer.epochs=4", "force=true").status == "completed"
    resumed = metrics.read_text().splitlines()
    assert resumed[: len(recorded)] == recorded and len(resumed) == len(recorded) + 1


@pytest.mark.parametrize(
    "content",
    [b"", b"- 1\n", b"trainer: 5\n", b"{{{\n", b"data: [1]\nmodel: 2\n", bytes(range(128, 256))],
    ids=["empty", "a list", "a section missing", "not YAML", "sections not mappings", "not text"],
)
def test_a_damaged_saved_config_is_refused_in_one_line_and_changes_no_file(run_copy, content):
    (run_copy / ".hydra" / "config.yaml").write_bytes(content)
    before = fingerprint(run_copy)
    assert refused_resume(run_copy, "trainer.epochs=4", "force=true").startswith("resume=")
    assert fingerprint(run_copy) == before


@pytest.mark.parametrize(
    ("name", "damage"),
    [
        ("checkpoint.pt", "an empty state"),
        ("checkpoint.pt", "a bare tensor"),
        ("summary.json", '{"status": 5, "started_at": 7, "wall_time_s": "x", "resumed_at": "no"}'),
    ],
)
def test_a_run_file_of_the_wrong_shape_is_refused_in_one_line_and_changes_no_file(run_copy, name, damage):
    import torch

    if name == "checkpoint.pt":
        torch.save({} if damage == "an empty state" else torch.zeros(3), run_copy / name)
    else:
        (run_copy / name).write_text(damage)
    before = fingerprint(run_copy)
    assert name in refused_resume(run_copy, "trainer.epochs=4", "force=true")
    assert fingerprint(run_copy) == before


@pytest.mark.parametrize(
    ("subdir", "key"),
    [("../base", "hydra.sweep.subdir"), ("same", "hydra.sweep.subdir"), (None, "hydra.run.dir")],
)
def test_a_folder_that_climbs_out_with_dots_or_one_shared_by_every_job_is_refused(run_copy, tmp_path,
                                                                                   monkeypatch, subdir,
                                                                                   key):  # fmt: skip
    monkeypatch.chdir(tmp_path)
    before = fingerprint(run_copy)
    if key == "hydra.run.dir":
        said = refused_command(f"hydra.run.dir={tmp_path}/nowhere/../outputs/run", "trainer.epochs=1")
    else:
        sweep = ["seed=0,1", f"hydra.sweep.dir={tmp_path}/sweep", f"hydra.sweep.subdir={subdir}"]
        said = refused_command(*sweep, "trainer.epochs=1", multirun=True)
    assert said.startswith(f"{key}=")
    assert fingerprint(run_copy) == before
    assert sorted(path.name for path in tmp_path.iterdir()) == ["outputs"]


def test_the_python_api_reads_dots_in_a_path_as_the_folder_they_name(run_copy, tmp_path):
    import nnexp
    from nnexp.errors import ConfigError

    with pytest.raises(ConfigError, match="is or holds or lies inside the run"):
        nnexp.run(["trainer.epochs=1"], output_dir=tmp_path / "nowhere" / ".." / "outputs" / "run")
    assert not (tmp_path / "nowhere").exists()


def test_a_mistake_through_the_python_api_leaves_no_folder(tmp_path):
    import nnexp
    from nnexp.errors import DataError

    (tmp_path / "empty.csv").write_text("")
    overrides = ["data=csv", f"data.path={tmp_path / 'empty.csv'}", "data.features=[a]", "data.target=b"]
    with pytest.raises(DataError, match="the file is empty"):
        nnexp.run(overrides, output_dir=tmp_path / "mine")
    assert not (tmp_path / "mine").exists()


def test_a_second_process_on_a_run_folder_is_refused_while_the_first_writes_it(run_copy, tmp_path):
    """The first is `nnexp resume=` in its own process; the second, this one, is refused by its lock."""
    from nnexp.runs.folder import RunFolderBusy

    first = subprocess.Popen(
        [*NNEXP, f"resume={run_copy}", "trainer.epochs=20", "force=true"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 180
        while read_summary(run_copy).get("resumed_from_epoch") is None:  # the first has the folder
            assert first.poll() is None, first.stderr.read()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        with pytest.raises(RunFolderBusy) as refused:
            resume(run_copy, "trainer.epochs=20", "force=true")
        assert f"{run_copy} is being written by another nnexp process" in refusal(refused)
    finally:
        assert first.wait(timeout=300) == 0, first.stderr.read()
    epochs = [row["epoch"] for row in csv.DictReader((run_copy / "metrics.csv").open())]
    assert epochs == [str(epoch) for epoch in range(1, 21)]  # one row per epoch, none twice


@pytest.mark.parametrize("multirun", [False, True], ids=["run folder", "sweep folder"])
def test_a_folder_named_outright_by_two_processes_at_once_is_written_by_the_first_only(
    tmp_path, monkeypatch, multirun
):
    """The first is `nnexp` in its own process; the second, this one, names the same folder while the
    first trains in it, and is refused before it writes anything."""
    key, seeds = ("hydra.sweep.dir", "seed=1,2") if multirun else ("hydra.run.dir", "seed=1")
    folder = tmp_path / "shared"
    first = subprocess.Popen([*NNEXP, *(["-m"] if multirun else []), seeds, "trainer.epochs=40",
                              f"{key}={folder}"], cwd=tmp_path, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        while not list(folder.rglob("metrics.csv")):
            assert first.poll() is None and time.monotonic() < deadline, first.stderr.read()
            time.sleep(0.05)
        monkeypatch.chdir(tmp_path)
        second = [seeds.replace("1", "7"), "trainer.epochs=1", f"{key}={folder}"]
        said = refused_command(*second, multirun=multirun)
        assert any(words in said for words in ("holds a run", "holds runs", "being written by another"))
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(timeout=120)
    seeds_run = {read_summary(summary.parent)["seed"] for summary in folder.rglob("summary.json")}
    assert seeds_run <= {1, 2} and seeds_run, seeds_run  # nothing of the second's is there
    overrides = [path.read_text() for path in folder.rglob("overrides.yaml")]
    assert overrides and not any("seed=7" in text for text in overrides)


@pytest.mark.parametrize("multirun", [False, True], ids=["run folder", "sweep folder"])
def test_a_named_folder_another_process_holds_is_refused_before_anything_is_written(tmp_path, monkeypatch,
                                                                                     multirun):  # fmt: skip
    """The moment before the first process has written anything: only the lock tells the folder is taken.
    The lock is taken here on a descriptor of its own, as the nnexp that named the folder first holds it."""
    import fcntl
    import os

    from nnexp.cli.preflight import preflight
    from nnexp.runs.folder import RunFolderBusy

    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "taken"
    folder.mkdir()
    descriptor = os.open(folder, os.O_RDONLY)
    fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    try:
        args = ["seed=1,2", f"hydra.sweep.dir={folder}"] if multirun else [f"hydra.run.dir={folder}"]
        with pytest.raises(RunFolderBusy) as refused:
            preflight([*args, "trainer.epochs=1"], multirun=multirun)
    finally:
        os.close(descriptor)
    assert refusal(refused).startswith(f"{folder} is being written by another nnexp process")
    assert list(folder.iterdir()) == []


def test_a_run_folder_named_outright_that_holds_a_run_is_refused(run_copy, tmp_path, monkeypatch, capsys):
    """The command's main() in this process: refused by the preflight, whose exit code and one line a
    process shows in tests/test_usage_errors.py::test_the_cli_exits_2_with_one_line_and_no_run_folder."""
    before = fingerprint(run_copy)
    monkeypatch.chdir(tmp_path)
    assert nnexp_exit_code(monkeypatch, "trainer.epochs=1", f"hydra.run.dir={run_copy}") == 2
    stderr = capsys.readouterr().err
    assert stderr.startswith("nnexp: error: ") and len(stderr.splitlines()) == 1
    assert "holds a run already, and nnexp never writes over" in stderr
    assert fingerprint(run_copy) == before
    assert sorted((tmp_path / "outputs").iterdir()) == [run_copy]  # and no other folder


def test_a_sweep_folder_named_outright_that_holds_runs_is_refused(run_copy, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    said = refused_command("trainer.epochs=1", f"hydra.sweep.dir={run_copy.parent}", multirun=True)
    assert f"hydra.sweep.dir={run_copy.parent} holds runs already" in said


@pytest.mark.parametrize("key", ["hydra.run.dir", "hydra.sweep.dir"])
def test_a_folder_named_outright_with_runs_deep_inside_is_refused(run_copy, tmp_path, monkeypatch, key):
    """outputs/ itself, say, whose runs are two levels down: a run written there would hold them."""
    monkeypatch.chdir(tmp_path)
    args = ["seed=1"] if key == "hydra.sweep.dir" else []
    said = refused_command(*args, "trainer.epochs=1", f"{key}={tmp_path}", multirun=key == "hydra.sweep.dir")
    assert f"holds runs already (e.g. {run_copy})" in said
    assert sorted(path.name for path in tmp_path.iterdir()) == ["outputs"]


def test_new_run_folders_are_never_made_inside_a_run(run_copy, monkeypatch):
    monkeypatch.chdir(run_copy)  # its pattern would make run_copy/outputs/DATE/TIME
    assert f"inside the run {run_copy}" in refused_command("trainer.epochs=1")
    assert not (run_copy / "outputs").exists()


@pytest.mark.parametrize("where", ["inside", "above"])
def test_the_python_api_does_not_write_into_or_over_runs(run_copy, where):
    import nnexp
    from nnexp.errors import ConfigError

    before = fingerprint(run_copy)
    output_dir = run_copy / "inner" if where == "inside" else run_copy.parent.parent
    with pytest.raises(ConfigError, match=f"is or holds or lies inside the run {run_copy}"):
        nnexp.run(["trainer.epochs=1"], output_dir=output_dir)
    assert fingerprint(run_copy) == before and not (run_copy / "inner").exists()


def test_the_python_api_does_not_write_over_a_run(run_copy):
    import nnexp
    from nnexp.errors import ConfigError

    before = fingerprint(run_copy)
    with pytest.raises(ConfigError, match="is or holds or lies inside the run"):
        nnexp.run(["trainer.epochs=1"], output_dir=run_copy)
    assert fingerprint(run_copy) == before


def start_and_signal_once_it_has(
    tmp_path: Path, name: str, *args: str, saying: str = ""
) -> subprocess.CompletedProcess[str]:
    """Start `nnexp ARGS hydra.run.dir=tmp_path/run`; send SIGTERM the moment the file `name` appears
    (and holds the text `saying`)."""
    folder = tmp_path / "run"
    process = subprocess.Popen(
        [*NNEXP, *args, f"hydra.run.dir={folder}"], cwd=tmp_path, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 180
    while not ((folder / name).exists() and saying in (folder / name).read_text(errors="replace")):
        assert process.poll() is None and time.monotonic() < deadline, process.stderr.read()
        time.sleep(0.01)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=120)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def test_sigterm_while_a_run_is_set_up_keeps_nothing(tmp_path):
    """The summary is written first, then the data and model are built: a stop then is at once."""
    result = start_and_signal_once_it_has(tmp_path, "summary.json", "trainer.epochs=30")
    assert result.returncode == 143, result.stderr
    assert result.stderr == "nnexp: interrupted by SIGTERM before the run began; nothing was kept\n"
    assert not (tmp_path / "run").exists()


def test_sigterm_from_the_first_checkpoint_on_leaves_a_run_to_resume_exactly(tmp_path):
    result = start_and_signal_once_it_has(tmp_path, "checkpoint.pt", "trainer.epochs=10")
    assert result.returncode == 143, result.stderr
    folder = tmp_path / "run"
    assert read_summary(folder)["status"] == "interrupted"
    assert f"resume with: nnexp resume={folder}" in result.stderr
    assert resume(folder).status == "completed"  # what that line runs, in this process
    assert read_summary(folder)["status"] == "completed" and read_summary(folder)["epochs_completed"] == 10
    epochs = [row["epoch"] for row in csv.DictReader((folder / "metrics.csv").open())]
    assert epochs == [str(epoch) for epoch in range(1, 11)]


def test_sigterm_during_a_learning_rate_range_test_is_recorded_as_an_interruption(tmp_path):
    # 5,000 small steps that never reach a diverging lr: the test is still running when the signal comes.
    lr_find = ["+lr_find=exponential", "lr_find.num_steps=5000", "lr_find.end_lr=1e-3"]
    result = start_and_signal_once_it_has(tmp_path, "nnexp.log", *lr_find, saying="lr range test: 5000 steps")
    assert result.returncode == 143, result.stderr
    assert result.stderr.strip().endswith(f"interrupted by SIGTERM; the run folder is {tmp_path / 'run'}")
    summary = read_summary(tmp_path / "run")
    assert summary["status"] == "interrupted" and "resume_with" not in summary


@pytest.mark.parametrize("lr_find", [True, False], ids=["lr range test", "training"])
def test_a_stop_that_a_library_swallowed_while_the_run_was_set_up_still_stops_it(
    tmp_path, monkeypatch, lr_find
):
    import nnexp
    import nnexp.runs.run as runner
    from nnexp.stop import TrainingInterrupted

    described = runner.describe

    def a_library_with_a_bare_except(*args):
        # SIGTERM lands inside, say, an optional import guarded by a bare `except:`
        with contextlib.suppress(BaseException):
            signal.raise_signal(signal.SIGTERM)
        return described(*args)

    monkeypatch.setattr(runner, "describe", a_library_with_a_bare_except)
    overrides = ["+lr_find=exponential", "lr_find.num_steps=50"] if lr_find else ["trainer.epochs=2"]
    with pytest.raises(TrainingInterrupted):
        nnexp.run(overrides, output_dir=tmp_path / "run")
    assert read_summary(tmp_path / "run")["status"] == "interrupted"
    assert not (tmp_path / "run" / "metrics.csv").exists() and not (tmp_path / "run" / "lr_find.csv").exists()


def test_a_resume_refuses_a_damaged_summary_instead_of_replacing_it(run_copy):
    (run_copy / "summary.json").write_text('{"status": "comp')  # cut off mid-write
    before = fingerprint(run_copy)
    said = refused_resume(run_copy, "trainer.epochs=4", "force=true")
    assert f"{run_copy / 'summary.json'} is damaged" in said
    assert fingerprint(run_copy) == before


def test_a_run_folder_inside_another_run_is_refused(run_copy, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = fingerprint(run_copy)
    said = refused_command("trainer.epochs=1", f"hydra.run.dir={run_copy / '.hydra' / 'x'}")
    assert f"lies inside the run {run_copy}" in said
    assert fingerprint(run_copy) == before


def test_a_signal_while_nnexp_starts_leaves_nothing_and_no_traceback(tmp_path):
    """Hydra has claimed the run folder; torch is still being imported: nothing to save, nothing kept."""
    process = subprocess.Popen([*NNEXP, "trainer.epochs=50"], cwd=tmp_path, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 180
    while not list((tmp_path / "outputs").glob("*/*/.hydra")):
        assert process.poll() is None and time.monotonic() < deadline, process.stderr.read()
        time.sleep(0.005)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130
    if "before the run began" in stderr:  # the usual case: the signal came before the first summary
        assert stderr == "nnexp: interrupted by SIGINT before the run began; nothing was kept\n"
        assert not (tmp_path / "outputs").exists()
    else:  # the run had begun: it stopped cleanly and can be resumed
        assert "resume with: nnexp resume=" in stderr and "Traceback" not in stderr
