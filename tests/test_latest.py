"""outputs/latest: a relative link to the newest run folder, swapped in one step, never over a user's file."""

from __future__ import annotations

import errno
import os
import threading
from pathlib import Path

import pytest

import nnexp
from nnexp.atomic import leftover_temporaries
from nnexp.errors import UserError
from nnexp.runs.latest import point_latest

SMOKE = ["debug=smoke", "diagnostics.enabled=false", "outputs.views=false"]


def test_after_two_runs_latest_names_the_second(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first = nnexp.run(SMOKE).run_dir
    second = nnexp.run(SMOKE).run_dir
    latest = tmp_path / "outputs" / "latest"
    assert latest.is_symlink() and not os.path.isabs(os.readlink(latest))  # relative: survives a move
    assert latest.resolve() == (tmp_path / second).resolve() != (tmp_path / first).resolve()
    assert (latest / "summary.json").is_file()


def test_a_mistake_found_after_the_folder_was_made_gives_latest_back_to_the_run_before(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first = nnexp.run(SMOKE).run_dir
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(UserError, match="the file is empty"):
        nnexp.run(["data=csv", "data.path=empty.csv", "data.features=[a]", "data.target=b"])
    assert (tmp_path / "outputs" / "latest").resolve() == (tmp_path / first).resolve()


def test_a_sweep_folder_made_by_hydras_resolver_becomes_latest(tmp_path, monkeypatch):
    """`nnexp -m` makes its sweep folder through the nnexp_new_dir resolver of hydra.sweep.dir (a real
    sweep of the command: checked by hand, see docs/run-folder.md); its jobs' folders are not new claims."""
    import yaml

    from nnexp.cli.hydra_hooks import claim_new_dir, release_claimed_dir
    from nnexp.paths import CONFIG_DIR

    sweep_dir = yaml.safe_load((Path(CONFIG_DIR) / "config.yaml").read_text())["hydra"]["sweep"]["dir"]
    assert sweep_dir.startswith("${nnexp_new_dir:outputs/multirun/")
    monkeypatch.chdir(tmp_path)
    folder = claim_new_dir("outputs/multirun/2026-01-01/10-00-00")
    try:
        assert os.readlink(tmp_path / "outputs" / "latest") == "multirun/2026-01-01/10-00-00"
    finally:
        release_claimed_dir(folder)
    assert not (tmp_path / "outputs").exists()  # the link went with the folder the claim made


def test_runs_starting_together_never_leave_latest_missing_dangling_or_half_made(tmp_path, monkeypatch):
    """Eight threads point latest at 40 new folders each while a reader follows it without pause."""
    monkeypatch.chdir(tmp_path)
    latest = Path("outputs") / "latest"
    first = Path("outputs/2026-01-01/00-00-00")
    first.mkdir(parents=True)
    point_latest(first)
    done = threading.Event()
    seen: list[str] = []
    broken: list[str] = []

    def read() -> None:
        while not done.is_set():
            try:
                target = os.readlink(latest)
            except OSError as error:
                broken.append(f"no link: {error}")
                continue
            if not (latest.parent / target).is_dir():
                broken.append(f"dangling: {target}")
            seen.append(target)

    def write(worker: int) -> None:
        for number in range(40):
            folder = Path(f"outputs/2026-01-01/{worker:02d}-{number:02d}")
            folder.mkdir()
            point_latest(folder)

    reader = threading.Thread(target=read)
    reader.start()
    writers = [threading.Thread(target=write, args=(worker,)) for worker in range(1, 9)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    done.set()
    reader.join()
    assert broken == [] and len(seen) > 0
    assert (latest.parent / os.readlink(latest)).is_dir() and os.readlink(latest) != "2026-01-01/00-00-00"
    assert leftover_temporaries("outputs") == [] and not list(Path("outputs").glob(".latest.*"))


@pytest.mark.parametrize("mine", ["file", "folder"])
def test_a_users_own_latest_is_never_replaced_and_says_so_in_one_line(tmp_path, monkeypatch, capsys, mine):
    monkeypatch.chdir(tmp_path)
    latest = tmp_path / "outputs" / "latest"
    latest.parent.mkdir()
    if mine == "file":
        latest.write_text("my notes\n")
    else:
        latest.mkdir()
        (latest / "notes.txt").write_text("my notes\n")
    capsys.readouterr()
    result = nnexp.run(SMOKE)
    assert result.status == "completed"
    warnings = [line for line in capsys.readouterr().err.splitlines() if "outputs/latest" in line]
    assert len(warnings) == 1 and warnings[0].startswith("nnexp: warning: outputs/latest is not nnexp's link")
    assert not latest.is_symlink()
    assert (latest.read_text() if mine == "file" else (latest / "notes.txt").read_text()) == "my notes\n"


def test_without_symbolic_links_latest_txt_holds_the_relative_path(tmp_path, monkeypatch):
    """A file system that refuses symbolic links (FAT, some network mounts) answers EPERM."""

    def refuse(*_: object, **__: object) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(os, "symlink", refuse)
    run_dir = nnexp.run(SMOKE).run_dir
    assert not os.path.lexists(tmp_path / "outputs" / "latest")
    named = (tmp_path / "outputs" / "latest.txt").read_text().strip()
    assert (tmp_path / "outputs" / named).resolve() == (tmp_path / run_dir).resolve()
