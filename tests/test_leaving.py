"""How the `nnexp` process leaves (nnexp.cli.entry.console): without tearing the interpreter down, but
with everything a normal exit does for others done first: its status, its buffered output, the atexit
callbacks. Each case runs `console` in a forked copy of this process, with `main` replaced by the test's.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
from pathlib import Path

import pytest

import nnexp.cli.command  # noqa: F401 - its main is replaced in the forked child
from nnexp.cli import entry

HANDED_TO_PYTHON = 97  # the child's status when console raised SystemExit(0) instead of leaving itself

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


def leave_with(main, folder: Path) -> tuple[int, str, str]:
    """Fork; in the child, `console()` with `main` as the command, stdout and stderr buffered into files.
    Returns the child's exit status and what it wrote to each."""
    out, err = folder / "stdout", folder / "stderr"
    pid = os.fork()
    if pid == 0:  # the child never returns into pytest, whatever happens
        try:
            sys.stdout, sys.stderr = open(out, "w"), open(err, "w")  # noqa: SIM115 - buffered until the end
            entry.main = main
            entry.console()
        except SystemExit as leaving:  # handed to Python's own exit
            os._exit(HANDED_TO_PYTHON if leaving.code == 0 else 96)
        except BaseException:  # noqa: BLE001 - console must not return: say so through the status
            os._exit(99)
        os._exit(98)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), out.read_text(), err.read_text()


def test_a_finished_command_leaves_with_status_0_and_its_output_written(tmp_path):
    def main():
        print("the results table")

    assert leave_with(main, tmp_path) == (0, "the results table\n", "")


@pytest.mark.parametrize(("code", "status"), [(2, 2), (130, 130), (None, 0), (256 + 3, 3)])
def test_the_exit_code_a_command_raises_is_the_status(tmp_path, code, status):
    def main():
        print("said before leaving", file=sys.stderr)
        sys.exit(code)

    assert leave_with(main, tmp_path) == (status, "", "said before leaving\n")


def test_an_exit_with_a_message_prints_it_and_leaves_with_status_1(tmp_path):
    def main():
        sys.exit("nnexp: something to say")

    assert leave_with(main, tmp_path) == (1, "", "nnexp: something to say\n")


def test_atexit_callbacks_run_before_the_process_leaves(tmp_path):
    """logging's flush, a coverage tool's data file, a scratch folder's removal: all registered so."""
    written = tmp_path / "written at exit"

    def main():
        atexit.register(written.write_text, "yes")

    status, _, _ = leave_with(main, tmp_path)
    assert status == 0 and written.read_text() == "yes"


def test_a_thread_still_running_is_left_to_pythons_own_exit_which_waits_for_it(tmp_path):
    release = threading.Event()

    def main():
        threading.Thread(target=release.wait, daemon=False).start()  # never released in the child

    status, _, _ = leave_with(main, tmp_path)
    assert status == HANDED_TO_PYTHON


def test_a_command_started_with_stdout_closed_says_nothing_and_opens_no_file_on_descriptor_1(tmp_path):
    """`nnexp >&-`: Python leaves sys.stdout None; the null device takes descriptor 1, so the next file
    opened (a run folder's lock, a record) never receives what is written to the console."""
    record = tmp_path / "record"

    def command():  # the command entry.main imports and calls, after its own first steps
        with open(tmp_path / "a file", "w") as opened:
            record.write_text(str(opened.fileno()))
        print("the results table")  # to the null device

    pid = os.fork()
    if pid == 0:
        try:
            os.close(1)
            sys.stdout = None
            sys.modules["nnexp.cli.command"].main = command
            entry.console()
        except BaseException:  # noqa: BLE001 - console must not return: say so through the status
            os._exit(99)
        os._exit(98)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert int(record.read_text()) > 2
    assert (tmp_path / "a file").read_text() == ""
