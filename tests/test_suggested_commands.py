"""A command nnexp suggests (resume with: ..., summary.json's resume_with, report.html's row, a sweep's or
a full disk's hint) is one a user may paste into a shell: each argument is shell-quoted, so a folder named
`q$(id>PWNED)` is a name there, never code. `shlex.split` of each suggestion gives back exactly the argv
meant; an ordinary path reads as it always has."""

from __future__ import annotations

import errno
import html
import re
import shlex
import signal
from dataclasses import replace
from pathlib import Path

import pytest

from conftest import compose_config, read_summary
from nnexp.errors import command_line, environment_fault
from nnexp.runs.end_of_run import NOTHING_DRAWN
from nnexp.stop import TrainingInterrupted

# $(...), backticks, spaces, ;, both quotes and a glob
HOSTILE = "q$(id>PWNED) `id` a;b \"c\" 'd' *"


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "outputs" / HOSTILE
    folder.mkdir(parents=True)
    return folder


def _said(text: str, before: str, after: str) -> list[str]:
    """The argv of the command that `text` suggests between `before` and `after`."""
    match = re.search(re.escape(before) + r"(.*?)" + re.escape(after), text, flags=re.DOTALL)
    assert match is not None, text
    return shlex.split(match.group(1))


def test_command_line_quotes_only_what_a_shell_would_read():
    assert (
        command_line("nnexp", "resume=outputs/2026-11-23/08-00-00")
        == "nnexp resume=outputs/2026-11-23/08-00-00"
    )
    for argv in (["nnexp", f"resume={HOSTILE}", "trust=[mynet.Net]"], ["df", "-h", Path(HOSTILE)]):
        assert shlex.split(command_line(*argv)) == [str(arg) for arg in argv]


def test_the_trust_refusal_suggests_the_command_for_that_very_folder(tmp_path):
    from nnexp.config.trust import UntrustedConfig
    from nnexp.runs.resume import resume_config

    folder = _folder(tmp_path)
    (folder / ".hydra").mkdir()
    (folder / ".hydra" / "config.yaml").write_text("model:\n  _target_: mynet.Net\n  hidden: 8\n")
    with pytest.raises(UntrustedConfig) as refused:
        resume_config([f"resume={folder}"])
    message = str(refused.value)
    assert "\n" not in message and refused.value.exit_code == 2
    argv = _said(message, "resume with: ", " (refusing it:")
    assert argv == ["nnexp", f"resume={folder}", "trust=[mynet.Net]"]


def test_an_interrupted_runs_summary_and_page_suggest_the_command_for_that_very_folder(tmp_path):
    from nnexp.look.page import run_page
    from nnexp.runs.run import run

    folder = _folder(tmp_path)

    def views(*_: object) -> dict:  # the run has trained and checkpointed by then
        raise TrainingInterrupted(signal.SIGTERM)

    with pytest.raises(TrainingInterrupted):
        run(compose_config("trainer.epochs=1", "device=cpu"), folder, end=replace(NOTHING_DRAWN, views=views))
    summary = read_summary(folder)
    assert summary["status"] == "interrupted"
    assert shlex.split(summary["resume_with"]) == ["nnexp", f"resume={folder}"]
    page = run_page(folder)
    row = re.search(r"<tr><th>resume with</th><td[^>]*>(.*?)</td></tr>", page)
    assert row is not None, page
    assert '"c"' not in row.group(1)  # HTML-escaped as well as shell-quoted
    assert shlex.split(html.unescape(row.group(1))) == ["nnexp", f"resume={folder}"]


@pytest.mark.parametrize("multirun", [False, True])
def test_a_stopped_commands_line_suggests_the_command_for_that_very_folder(
    tmp_path, monkeypatch, capsys, multirun
):
    import nnexp.runs.run
    import nnexp.sweep.ledger
    from nnexp.cli.command import _run_or_exit

    folder = _folder(tmp_path) / "0"
    folder.mkdir()
    (folder / "checkpoint.pt").write_bytes(b"")

    def stopped(*_: object, **__: object) -> None:
        raise TrainingInterrupted(signal.SIGINT)

    monkeypatch.setattr(nnexp.runs.run, "run", stopped)
    monkeypatch.setattr(nnexp.sweep.ledger, "record_stopped_job", lambda *_: None)
    with pytest.raises(SystemExit) as stop:
        _run_or_exit(compose_config(), folder, multirun=multirun)
    assert stop.value.code == 130
    stderr = capsys.readouterr().err
    if multirun:
        assert _said(stderr, "resume the sweep with: ", "\n") == ["nnexp", "-m", f"resume={folder.parent}"]
    else:
        assert _said(stderr, "resume with: ", "\n") == ["nnexp", f"resume={folder}"]


def test_a_run_folder_given_as_a_sweep_suggests_the_command_for_that_very_folder(tmp_path):
    from nnexp.errors import ConfigError
    from nnexp.sweep.resume import _read_sweep_config

    folder = _folder(tmp_path)
    (folder / ".hydra").mkdir()
    with pytest.raises(ConfigError) as refused:
        _read_sweep_config(folder)
    assert _said(str(refused.value), "resume it with ", " (no -m)") == ["nnexp", f"resume={folder}"]


def test_a_full_disks_fix_names_the_folder_and_the_resume_quoted(tmp_path):
    from nnexp.runs.folder import RunFolder

    folder = _folder(tmp_path)
    (folder / "checkpoint.pt").write_bytes(b"")
    then = RunFolder(folder).then()
    assert _said(then + "\n", "resume with: ", "\n") == ["nnexp", f"resume={folder}"]
    fault = environment_fault(OSError(errno.ENOSPC, "No space left", str(folder / "x")), then=then)
    assert fault is not None
    assert _said(str(fault), "free some space there (", " shows what is left)") == ["df", "-h", str(folder)]
    assert shlex.split(str(fault).rsplit("resume with: ", 1)[1]) == ["nnexp", f"resume={folder}"]
