"""Nothing lost on resume: a refused resume, a second process or a folder named outright never changes a
run's files; a forced change is the change training gets. Real CLI, real files, compared byte for byte."""

from __future__ import annotations

import csv
import hashlib
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import NNEXP, read_summary, run_folders, run_nnexp


def fingerprint(folder: Path) -> dict[str, str]:
    """Every file of a run folder with the sha256 of its bytes."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A completed three-epoch run of the default experiment."""
    root = tmp_path_factory.mktemp("trained")
    result = run_nnexp("trainer.epochs=3", cwd=root)
    assert result.returncode == 0, result.stderr
    [folder] = run_folders(root)
    return folder


@pytest.fixture
def run_copy(trained, tmp_path) -> Path:
    """A copy of the trained run in this test's own folder, to be resumed or damaged at will."""
    copy = tmp_path / "outputs" / "run"
    shutil.copytree(trained, copy)
    return copy


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
def test_a_refused_resume_says_why_in_one_line_and_changes_no_file(run_copy, tmp_path, change, said):
    before = fingerprint(run_copy)
    result = run_nnexp(f"resume={run_copy}", *change, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("nnexp: error: ") and said in result.stderr
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr
    assert fingerprint(run_copy) == before


def test_resuming_a_completed_run_with_nothing_more_to_do_changes_nothing(run_copy, tmp_path):
    before = fingerprint(run_copy)
    result = run_nnexp(f"resume={run_copy}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "completed all 3 epochs: nothing to resume" in result.stdout
    assert fingerprint(run_copy) == before


def test_a_forced_learning_rate_is_the_one_training_uses(run_copy, tmp_path):
    result = run_nnexp(f"resume={run_copy}", "trainer.epochs=4", "optim.lr=0.05", "force=true", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader((run_copy / "metrics.csv").open()))
    assert [row["epoch"] for row in rows] == ["1", "2", "3", "4"]
    assert float(rows[2]["lr"]) == 0.001 and float(rows[3]["lr"]) == 0.05
    assert "lr: 0.05" in (run_copy / ".hydra" / "config.yaml").read_text()


def test_a_resumed_run_keeps_its_start_and_adds_up_its_time(run_copy, tmp_path):
    first = read_summary(run_copy)
    result = run_nnexp(f"resume={run_copy}", "trainer.epochs=4", "force=true", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    resumed = read_summary(run_copy)
    assert resumed["started_at"] == first["started_at"]
    assert len(resumed["resumed_at"]) == 1 and resumed["resumed_from_epoch"] == 3
    assert resumed["wall_time_s"] > first["wall_time_s"]
    assert resumed["epochs_completed"] == 4 and resumed["status"] == "completed"


@pytest.mark.parametrize("damage", ["deleted", "random bytes", "rows cut off", "a row repeated"])
def test_a_resume_rebuilds_a_damaged_metrics_file_from_the_checkpoint(run_copy, tmp_path, damage):
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
    result = run_nnexp(f"resume={run_copy}", "trainer.epochs=4", "force=true", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    resumed = metrics.read_text().splitlines()
    assert resumed[: len(recorded)] == recorded and len(resumed) == len(recorded) + 1


@pytest.mark.parametrize(
    "content",
    [b"", b"- 1\n", b"trainer: 5\n", b"{{{\n", b"data: [1]\nmodel: 2\n", bytes(range(128, 256))],
    ids=["empty", "a list", "a section missing", "not YAML", "sections not mappings", "not text"],
)
def test_a_damaged_saved_config_is_refused_in_one_line_and_changes_no_file(run_copy, tmp_path, content):
    (run_copy / ".hydra" / "config.yaml").write_bytes(content)
    before = fingerprint(run_copy)
    result = run_nnexp(f"resume={run_copy}", "trainer.epochs=4", "force=true", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("nnexp: error: resume=") and len(result.stderr.splitlines()) == 1
    assert fingerprint(run_copy) == before


@pytest.mark.parametrize(
    ("name", "damage"),
    [
        ("checkpoint.pt", "an empty state"),
        ("checkpoint.pt", "a bare tensor"),
        ("summary.json", '{"status": 5, "started_at": 7, "wall_time_s": "x", "resumed_at": "no"}'),
    ],
)
def test_a_run_file_of_the_wrong_shape_is_refused_in_one_line_and_changes_no_file(run_copy, tmp_path, name,
                                                                                   damage):  # fmt: skip
    import torch

    if name == "checkpoint.pt":
        torch.save({} if damage == "an empty state" else torch.zeros(3), run_copy / name)
    else:
        (run_copy / name).write_text(damage)
    before = fingerprint(run_copy)
    result = run_nnexp(f"resume={run_copy}", "trainer.epochs=4", "force=true", cwd=tmp_path)
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1, result.stderr
    assert name in result.stderr and fingerprint(run_copy) == before


@pytest.mark.parametrize(
    ("subdir", "key"),
    [("../base", "hydra.sweep.subdir"), ("same", "hydra.sweep.subdir"), (None, "hydra.run.dir")],
)
def test_a_folder_that_climbs_out_with_dots_or_one_shared_by_every_job_is_refused(run_copy, tmp_path, subdir,
                                                                                   key):  # fmt: skip
    if key == "hydra.run.dir":
        args = [f"hydra.run.dir={tmp_path}/nowhere/../outputs/run"]
    else:
        args = ["-m", "seed=0,1", f"hydra.sweep.dir={tmp_path}/sweep", f"hydra.sweep.subdir={subdir}"]
    before = fingerprint(run_copy)
    result = run_nnexp(*args, "trainer.epochs=1", cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.startswith(f"nnexp: error: {key}="), result.stderr
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
    first = subprocess.Popen(
        [*NNEXP, f"resume={run_copy}", "trainer.epochs=40", "force=true"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while read_summary(run_copy).get("resumed_from_epoch") is None:  # the first has the folder
            assert first.poll() is None, first.stderr.read()
            assert time.monotonic() < deadline
            time.sleep(0.1)
        second = run_nnexp(f"resume={run_copy}", "trainer.epochs=40", "force=true", cwd=tmp_path)
        assert second.returncode == 2
        assert f"{run_copy} is being written by another nnexp process" in second.stderr
    finally:
        assert first.wait(timeout=300) == 0, first.stderr.read()
    epochs = [row["epoch"] for row in csv.DictReader((run_copy / "metrics.csv").open())]
    assert epochs == [str(epoch) for epoch in range(1, 41)]  # one row per epoch, none twice


@pytest.mark.parametrize("multirun", [False, True], ids=["run folder", "sweep folder"])
def test_a_folder_named_outright_by_two_processes_at_once_is_written_by_the_first_only(tmp_path, multirun):
    key, sweep = ("hydra.sweep.dir", ["-m", "seed=1,2"]) if multirun else ("hydra.run.dir", ["seed=1"])
    folder = tmp_path / "shared"
    first = subprocess.Popen([*NNEXP, *sweep, "trainer.epochs=40", f"{key}={folder}"], cwd=tmp_path,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 120
    while not list(folder.rglob("metrics.csv")):
        assert first.poll() is None and time.monotonic() < deadline, first.stderr.read()
        time.sleep(0.05)
    second = run_nnexp(*[arg.replace("1", "7") for arg in sweep], "trainer.epochs=1", f"{key}={folder}",
                       cwd=tmp_path)  # fmt: skip
    assert second.returncode == 2 and len(second.stderr.splitlines()) == 1, second.stderr
    assert any(said in second.stderr for said in ("holds a run", "holds runs", "being written by another"))
    first.send_signal(signal.SIGTERM)
    first.wait(timeout=120)
    seeds = {read_summary(summary.parent)["seed"] for summary in folder.rglob("summary.json")}
    assert seeds <= {1, 2} and seeds, seeds  # nothing of the second process's is there
    overrides = [path.read_text() for path in folder.rglob("overrides.yaml")]
    assert overrides and not any("seed=7" in text for text in overrides)


@pytest.mark.parametrize("multirun", [False, True], ids=["run folder", "sweep folder"])
def test_a_named_folder_another_process_holds_is_refused_before_anything_is_written(tmp_path, multirun):
    """The moment before the first process has written anything: only the lock tells the folder is taken."""
    import fcntl
    import os

    folder = tmp_path / "taken"
    folder.mkdir()
    descriptor = os.open(folder, os.O_RDONLY)
    fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as the nnexp that named it first holds it
    try:
        args = ["-m", "seed=1,2", f"hydra.sweep.dir={folder}"] if multirun else [f"hydra.run.dir={folder}"]
        result = run_nnexp(*args, "trainer.epochs=1", cwd=tmp_path)
    finally:
        os.close(descriptor)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"nnexp: error: {folder} is being written by another nnexp process")
    assert len(result.stderr.splitlines()) == 1
    assert list(folder.iterdir()) == []


def test_a_run_folder_named_outright_that_holds_a_run_is_refused(run_copy, tmp_path):
    before = fingerprint(run_copy)
    result = run_nnexp("trainer.epochs=1", f"hydra.run.dir={run_copy}", cwd=tmp_path)
    assert result.returncode == 2
    assert "holds a run already, and nnexp never writes over" in result.stderr
    assert fingerprint(run_copy) == before
    assert sorted((tmp_path / "outputs").iterdir()) == [run_copy]  # and no other folder


def test_a_sweep_folder_named_outright_that_holds_runs_is_refused(run_copy, tmp_path):
    result = run_nnexp("-m", "trainer.epochs=1", f"hydra.sweep.dir={run_copy.parent}", cwd=tmp_path)
    assert result.returncode == 2
    assert f"hydra.sweep.dir={run_copy.parent} holds runs already" in result.stderr


@pytest.mark.parametrize("key", ["hydra.run.dir", "hydra.sweep.dir"])
def test_a_folder_named_outright_with_runs_deep_inside_is_refused(run_copy, tmp_path, key):
    """outputs/ itself, say, whose runs are two levels down: a run written there would hold them."""
    args = ["-m", "seed=1"] if key == "hydra.sweep.dir" else []
    result = run_nnexp(*args, "trainer.epochs=1", f"{key}={tmp_path}", cwd=tmp_path)
    assert result.returncode == 2 and f"holds runs already (e.g. {run_copy})" in result.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == ["outputs"]


def test_new_run_folders_are_never_made_inside_a_run(run_copy, tmp_path):
    result = run_nnexp("trainer.epochs=1", cwd=run_copy)  # its pattern would make run_copy/outputs/DATE/TIME
    assert result.returncode == 2 and f"inside the run {run_copy}" in result.stderr
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


def start_and_signal_once_it_has(tmp_path: Path, name: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Start `nnexp ARGS hydra.run.dir=tmp_path/run`; send SIGTERM the moment the file `name` appears."""
    folder = tmp_path / "run"
    process = subprocess.Popen(
        [*NNEXP, *args, f"hydra.run.dir={folder}"], cwd=tmp_path, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not (folder / name).exists():
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
    result = start_and_signal_once_it_has(tmp_path, "checkpoint.pt", "trainer.epochs=30")
    assert result.returncode == 143, result.stderr
    folder = tmp_path / "run"
    assert read_summary(folder)["status"] == "interrupted"
    assert f"resume with: nnexp resume={folder}" in result.stderr
    resumed = run_nnexp(f"resume={folder}", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert read_summary(folder)["status"] == "completed" and read_summary(folder)["epochs_completed"] == 30
    epochs = [row["epoch"] for row in csv.DictReader((folder / "metrics.csv").open())]
    assert epochs == [str(epoch) for epoch in range(1, 31)]


def test_sigterm_during_a_learning_rate_range_test_is_recorded_as_an_interruption(tmp_path):
    # 5,000 small steps that never reach a diverging lr: the test is still running when the signal comes.
    lr_find = ["+lr_find=exponential", "lr_find.num_steps=5000", "lr_find.end_lr=1e-3"]
    result = start_and_signal_once_it_has(tmp_path, "summary.json", *lr_find)
    assert result.returncode == 143, result.stderr
    assert result.stderr.strip().endswith(f"interrupted by SIGTERM; the run folder is {tmp_path / 'run'}")
    summary = read_summary(tmp_path / "run")
    assert summary["status"] == "interrupted" and "resume_with" not in summary


def test_a_resume_refuses_a_damaged_summary_instead_of_replacing_it(run_copy, tmp_path):
    (run_copy / "summary.json").write_text('{"status": "comp')  # cut off mid-write
    before = fingerprint(run_copy)
    result = run_nnexp(f"resume={run_copy}", "trainer.epochs=4", "force=true", cwd=tmp_path)
    assert result.returncode == 2
    assert f"{run_copy / 'summary.json'} is damaged" in result.stderr and len(result.stderr.splitlines()) == 1
    assert fingerprint(run_copy) == before


def test_a_run_folder_inside_another_run_is_refused(run_copy, tmp_path):
    before = fingerprint(run_copy)
    result = run_nnexp("trainer.epochs=1", f"hydra.run.dir={run_copy / '.hydra' / 'x'}", cwd=tmp_path)
    assert result.returncode == 2 and f"lies inside the run {run_copy}" in result.stderr
    assert fingerprint(run_copy) == before


def test_a_signal_while_nnexp_starts_leaves_nothing_and_no_traceback(tmp_path):
    """Hydra has claimed the run folder; torch is still being imported: nothing to save, nothing kept."""
    process = subprocess.Popen([*NNEXP, "trainer.epochs=50"], cwd=tmp_path, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 120
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
