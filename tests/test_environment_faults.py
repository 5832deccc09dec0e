"""A full disk or a folder the machine will not let nnexp write: one line, exit code 4, no temporary file
left, nothing written before lost (issue 23).

The disks are real: a small tmpfs per test, filled beforehand to the level at which the run meets the
full disk at the moment under test (a filler file sized from os.statvfs); the read-only folders are a
tmpfs remounted read-only (chmod stops no root). Mounting needs root: elsewhere these tests skip.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import subprocess
from pathlib import Path
from typing import NamedTuple

import pytest

from conftest import nnexp_exit_code, read_summary, run_nnexp

PAGE = 4096
SMALL = ("model.hidden=[16]", "trainer.epochs=1")  # a checkpoint of a few pages, a report of dozens


def _mount(where: Path, options: str) -> None:
    where.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root and mount(8); not available here")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
                          capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here: {done.stderr.strip() or done.returncode}")


@pytest.fixture
def tmpfs(tmp_path):
    """mount(size_kb) -> a fresh tmpfs of that size under tmp_path; all unmounted at the end."""
    mounted: list[Path] = []

    def mount(size_kb: int, name: str = "disk") -> Path:
        where = tmp_path / name
        _mount(where, f"size={size_kb}k")
        mounted.append(where)
        return where

    yield mount
    for where in reversed(mounted):
        subprocess.run(["umount", "-l", str(where)], check=False)


def read_only(where: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(where)], check=True)


def fill(disk: Path, free_bytes: int) -> Path:
    """Leave `free_bytes` (rounded down to whole pages) free on `disk`, with one filler file."""
    stats = os.statvfs(disk)
    size = stats.f_bavail * stats.f_frsize - free_bytes // PAGE * PAGE
    filler = disk / "filler"
    with filler.open("wb") as handle:
        if size > 0:
            os.posix_fallocate(handle.fileno(), 0, size)
    return filler


def on_disk(path: Path) -> int:
    """Bytes a file takes on a tmpfs: whole pages."""
    return -(-path.stat().st_size // PAGE) * PAGE


def fingerprint(folder: Path) -> dict[str, str]:
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file()}  # fmt: skip


class Exited(NamedTuple):
    """How a command run in this process ended: as much of a CompletedProcess as assert_one_line reads."""

    returncode: int
    stderr: str


def assert_one_line(result: subprocess.CompletedProcess[str] | Exited, path: Path, what: str) -> None:
    """Exit code 4, and stderr is exactly `nnexp: error: <path>: <what>: <fix>`."""
    assert result.returncode == 4, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("nnexp: error: "), result.stderr
    assert f": error: {path}: {what}: " in lines[0], lines[0]


def assert_no_temporary(folder: Path) -> None:
    assert not [path for path in folder.rglob("*.tmp")], sorted(folder.rglob("*"))


@pytest.fixture(scope="module")
def small_run(tmp_path_factory) -> Path:
    """A completed small run of the command on an ordinary disk: the sizes of what it writes, to fill to."""
    root = tmp_path_factory.mktemp("small")
    result = run_nnexp(*SMALL, f"hydra.run.dir={root / 'run'}", cwd=root)
    assert result.returncode == 0, result.stderr
    return root / "run"


def test_a_disk_full_while_hydra_writes_its_records_is_one_line_and_leaves_nothing(tmpfs):
    disk = tmpfs(64)
    fill(disk, 0)
    result = run_nnexp("debug=smoke", f"hydra.run.dir={disk / 'run'}", cwd=disk.parent)
    assert_one_line(result, disk / "run" / ".hydra" / "config.yaml", "disk is full")
    assert not (disk / "run").exists()  # the run never began: its folder goes, no 0-byte config.yaml
    assert_no_temporary(disk)


def test_a_disk_full_at_the_first_checkpoint_is_one_line_and_leaves_nothing(tmpfs):
    disk = tmpfs(4096)
    fill(disk, 64 * 1024)  # the records before it fit, the first checkpoint (340 KB) does not
    result = run_nnexp("trainer.epochs=1", f"hydra.run.dir={disk / 'run'}", cwd=disk.parent)
    assert_one_line(result, disk / "run" / "checkpoint.pt", "disk is full")
    assert "run it again" in result.stderr
    assert not (disk / "run").exists()  # nothing to resume: the folder gives its space back
    assert_no_temporary(disk)


def test_a_disk_full_at_a_later_checkpoint_keeps_the_earlier_one_and_resumes_once_freed(tmpfs):
    import torch

    disk = tmpfs(8192)
    run = disk / "run"
    # The untrained checkpoint (340 KB) and the epochs' rows fit; a trained one (Adam's moments: 1 MB) not.
    filler = fill(disk, 640 * 1024)
    result = run_nnexp("trainer.epochs=2", f"hydra.run.dir={run}", cwd=disk.parent)
    assert_one_line(result, run / "checkpoint.pt", "disk is full")
    assert f"resume with: nnexp resume={run}" in result.stderr
    assert_no_temporary(disk)
    kept = torch.load(run / "checkpoint.pt", weights_only=True)
    rows = (run / "metrics.csv").read_text().splitlines()
    assert kept["epoch"] in (0, 1) and len(rows) >= 2, rows  # the header and at least epoch 1
    assert all(row.count(",") == rows[0].count(",") for row in rows), rows  # no half row

    filler.unlink()
    resumed = run_nnexp(f"resume={run}", cwd=disk.parent)
    assert resumed.returncode == 0, resumed.stderr
    assert read_summary(run)["status"] == "completed" and (run / "report.html").is_file()
    assert_no_temporary(disk)


def test_a_disk_full_at_the_report_is_one_line_and_the_run_is_kept(tmpfs, small_run):
    sizes = {path.name: on_disk(path) for path in small_run.rglob("*") if path.is_file()}
    page, checkpoint = sizes.pop("report.html"), sizes["checkpoint.pt"]
    assert page > checkpoint + 8 * PAGE, (page, checkpoint)  # else the page is not the first to meet it
    disk = tmpfs(4096)
    run = disk / "run"
    # Everything else fits, with a checkpoint's worth of room for swapping one in; the page does not.
    fill(disk, sum(sizes.values()) + checkpoint + (page - checkpoint) // 2)
    result = run_nnexp(*SMALL, f"hydra.run.dir={run}", cwd=disk.parent)
    assert_one_line(result, run / "report.html", "disk is full")
    assert_no_temporary(disk)
    assert read_summary(run)["status"] == "completed" and not (run / "report.html").exists()


def test_resuming_a_read_only_run_folder_is_refused_before_anything_changes(
    tmpfs, session_runs, monkeypatch, capsys
):
    """`nnexp resume=RUN` through the command's main() in this process (exit code 4 from a process: the
    full-disk tests above)."""
    disk = tmpfs(4096)
    shutil.copytree(session_runs(*SMALL), disk / "run")
    before = fingerprint(disk / "run")
    read_only(disk)
    monkeypatch.chdir(disk.parent)
    code = nnexp_exit_code(monkeypatch, f"resume={disk / 'run'}", "trainer.epochs=2", "force=true")
    assert_one_line(Exited(code, capsys.readouterr().err), disk / "run", "read-only file system")
    assert fingerprint(disk / "run") == before


def test_a_report_into_a_read_only_folder_is_one_line_with_exit_code_4(
    tmpfs, session_runs, monkeypatch, capsys
):
    """`nnexp-report RUNS`, its console entry in this process: the exit code it leaves with and its line."""
    from nnexp.look.report import console_main

    disk = tmpfs(4096)
    shutil.copytree(session_runs(*SMALL), disk / "runs" / "run")
    read_only(disk)
    monkeypatch.chdir(disk.parent)
    monkeypatch.setattr("sys.argv", ["nnexp-report", str(disk / "runs")])
    with pytest.raises(SystemExit) as stopped:
        console_main()
    assert_one_line(
        Exited(stopped.value.code, capsys.readouterr().err), disk / "runs", "read-only file system"
    )
    assert not (disk / "runs" / "report.csv").exists()

    from nnexp.errors import EnvironmentFault
    from nnexp.look.predict import check_out  # nnexp-predict --out: refused the same way, before writing

    with pytest.raises(EnvironmentFault, match=f"^{disk}: read-only file system: ") as refused:
        check_out(disk / "predictions.csv", ["prediction"], [])
    assert refused.value.exit_code == 4


def test_a_sweep_whose_failed_jobs_all_met_a_refusing_machine_exits_4():
    from nnexp.sweep.ledger import sweep_exit_code

    full = {"status": "failed", "exit_code": 4}
    assert sweep_exit_code([full, full]) == 4
    assert sweep_exit_code([full, {"status": "failed", "exit_code": 2}]) == 1


def test_the_atomic_writer_keeps_the_old_file_and_no_temporary_on_a_full_disk(tmpfs):
    from nnexp.atomic import write_atomically
    from nnexp.errors import environment_fault

    disk = tmpfs(64)
    target = disk / "predictions.csv"
    write_atomically(target, "a,b\n1,2\n")
    fill(disk, 0)
    with pytest.raises(OSError) as raised:
        write_atomically(target, "x" * 10 * PAGE)
    assert raised.value.errno == errno.ENOSPC and raised.value.filename == str(target)
    assert str(environment_fault(raised.value)).startswith(f"{target}: disk is full: free some space")
    assert target.read_text() == "a,b\n1,2\n"
    assert_no_temporary(disk)
