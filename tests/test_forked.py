"""Work done in a forked child (nnexp/forked.py): the same answer, its log lines, its errors, nothing of
the parent's kept open, and the work done here wherever a child cannot give it."""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import time
from pathlib import Path

import pytest

from nnexp import forked
from nnexp.forked import in_child

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")


def test_the_answer_is_worked_out_in_another_process_and_comes_back_whole():
    parent = os.getpid()
    answer = in_child(lambda: {"pid": os.getpid(), "values": [0.1, 2.5e-7, "text"] * 1000}).result()
    assert answer["pid"] != parent
    assert answer["values"] == [0.1, 2.5e-7, "text"] * 1000  # more than one pipe buffer


def test_what_the_child_logs_is_logged_here_in_order(caplog):
    def work() -> int:
        logging.getLogger("nnexp").warning("first %s", "line")
        logging.getLogger("nnexp.deeper").info("second")
        return 7

    with caplog.at_level(logging.INFO, logger="nnexp"):
        assert in_child(work).result() == 7
    lines = [(record.name, record.levelno, record.getMessage()) for record in caplog.records]
    assert lines == [("nnexp", logging.WARNING, "first line"), ("nnexp.deeper", logging.INFO, "second")]


def test_an_error_in_the_child_is_raised_by_result():
    def work() -> None:
        raise ValueError("no such split")

    with pytest.raises(ValueError, match="no such split"):
        in_child(work).result()


def _started_then_paused(ready: Path) -> None:
    ready.touch()  # by path: the child has closed every descriptor it inherited by now
    signal.pause()  # until cancel's SIGKILL (the stop signals are ignored in the child)


def _wait_for(path: Path) -> None:
    deadline = time.monotonic() + 60
    while not path.exists():
        assert time.monotonic() < deadline, f"the child never wrote {path}"
        time.sleep(0.01)


def test_the_child_does_not_keep_the_parents_lock(tmp_path):
    """A run folder's lock goes with the process that took it, not with a child still working."""
    lock_file = tmp_path / "lock"
    lock_file.touch()
    held = os.open(lock_file, os.O_RDONLY)
    fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
    forked.close_in_children(held)  # as a run folder's lock is (nnexp/runs/folder.py)
    child = in_child(lambda: _started_then_paused(tmp_path / "ready"))
    try:
        _wait_for(tmp_path / "ready")
        forked.keep_in_children(held)
        os.close(held)  # the parent lets go of the lock while the child still runs
        again = os.open(lock_file, os.O_RDONLY)
        try:
            fcntl.flock(again, fcntl.LOCK_EX | fcntl.LOCK_NB)  # BlockingIOError if the child held it
        finally:
            os.close(again)
    finally:
        child.cancel()


def test_cancel_stops_a_child_that_would_never_answer_and_reaps_it(tmp_path):
    child = in_child(lambda: _started_then_paused(tmp_path / "ready"))
    pid = child._pid
    _wait_for(tmp_path / "ready")
    child.cancel()
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # already reaped: no zombie left


def test_a_child_that_dies_without_an_answer_leaves_the_work_to_be_done_here():
    parent = os.getpid()

    def work() -> str:
        if os.getpid() != parent:
            os._exit(3)  # the child dies as the work begins
        return "done here"

    assert in_child(work).result() == "done here"


def test_without_fork_the_work_is_done_here(monkeypatch):
    monkeypatch.delattr(forked.os, "fork")
    assert in_child(os.getpid).result() == os.getpid()


def test_the_stop_signals_are_the_parents_to_answer_not_the_childs():
    """Ctrl-C and a scheduler's signals reach the whole process group: the run answers them (and cancels
    the child); the child lives on until then, and says nothing."""
    parent = os.getpid()

    def work() -> str:
        if os.getpid() == parent:
            return "worked out here: the child died of its signals"
        for stop in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2):  # SLURM: USR1/2
            os.kill(os.getpid(), stop)
        return "the child lived on"

    assert in_child(work).result() == "the child lived on"


def test_a_child_that_waits_for_ever_is_stopped_and_the_work_done_here(monkeypatch):
    """Forked while another thread held a lock, a child would wait for it for ever: it stops using the CPU."""
    monkeypatch.setattr(forked, "STALLED_S", 0.5)
    monkeypatch.setattr(forked, "POLL_S", 0.05)
    parent = os.getpid()

    def work() -> str:
        if os.getpid() != parent:
            signal.pause()  # uses no CPU, never returns (the stop signals are ignored in the child)
        return "done here"

    child = in_child(work)
    pid = child._pid
    assert child.result() == "done here"
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def test_a_run_folders_lock_is_closed_in_the_child(tmp_path):
    """So a run stopped by SIGKILL frees its folder at once, whatever its child is still doing."""
    from nnexp.runs.folder import RunFolder

    run = tmp_path / "run"
    run.mkdir()
    with RunFolder(run).lock():
        child = in_child(lambda: _started_then_paused(tmp_path / "ready"))
        try:
            _wait_for(tmp_path / "ready")
            opened = {os.path.realpath(link) for link in Path(f"/proc/{child._pid}/fd").iterdir()}
        finally:
            child.cancel()
    assert str(run.resolve()) not in opened


def test_a_background_import_is_finished_before_a_fork(monkeypatch):
    """Forked while another thread imports, a child would find that module's lock held for ever."""
    import threading

    started, finish = threading.Event(), threading.Event()

    def importing() -> None:
        started.set()
        finish.wait()

    thread = threading.Thread(target=importing)
    thread.start()
    monkeypatch.setattr(forked, "_FINISHED_FIRST", [])
    forked.finish_before_forking(thread)
    started.wait()
    threading.Timer(0.2, finish.set).start()  # the import ends a little later; the fork waits for it
    assert in_child(finish.is_set).result() is True  # the child's copy: forked after the import ended


def test_with_sigchld_ignored_the_answer_still_comes_back_and_cancel_still_returns(tmp_path):
    """A program that ignores SIGCHLD (inherited through exec) has its children reaped by the kernel."""
    before = signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    try:
        assert in_child(lambda: 6 * 7).result() == 42
        child = in_child(lambda: _started_then_paused(tmp_path / "ready"))
        _wait_for(tmp_path / "ready")
        child.cancel()
    finally:
        signal.signal(signal.SIGCHLD, before)


def test_a_child_leaves_when_its_parent_is_killed(tmp_path):
    """SIGKILL leaves the run no time to cancel its child: the kernel tells the child (PR_SET_PDEATHSIG)."""

    def started_then_paused() -> None:
        (tmp_path / "child.pid").write_text(str(os.getpid()))
        (tmp_path / "ready").touch()
        # A bound, should the kernel never tell it: a stray child must not hold pytest's pipes for ever.
        time.sleep(120)

    run = os.fork()  # stands for the run's process: it starts a child, then is killed
    if run == 0:
        try:
            child = in_child(started_then_paused)  # kept: a dropped child is cancelled
            _wait_for(tmp_path / "ready")
        finally:
            os.kill(os.getpid(), signal.SIGKILL)
        child.cancel()  # never reached
    _, status = os.waitpid(run, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    child = int((tmp_path / "child.pid").read_text())
    deadline = time.monotonic() + 60
    while _running(child):  # what the child does, not a number of seconds
        assert time.monotonic() < deadline, "the child outlived its killed parent"
        time.sleep(0.01)


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"  # ended, waiting to be reaped by whoever adopted it


@pytest.mark.parametrize("another_thread", [False, True], ids=["to the forking thread", "to another thread"])
def test_a_stop_signal_that_comes_while_forking_stops_the_run_and_its_child(tmp_path, another_thread):
    """Found by a hostile user: Ctrl-C as a child was forked let the sweep run on, the stop's exception
    raised inside fork()'s own callbacks (logging's) and swallowed there. The signal comes here from such a
    callback, to a process set up as a run's is: it must stop the run, and no child may be left."""
    said = tmp_path / "said"
    sandbox = os.fork()  # the callback registered stays in this copy of the test process
    if sandbox == 0:
        try:
            import threading

            from nnexp import stop

            stage = stop.enter(stop.State.BUILDING)  # as a run building its model (the baseline's fork)
            if another_thread:  # a thread that takes the signal (torch's do), leaving the forking thread
                threading.Thread(target=threading.Event().wait, daemon=True).start()
            os.register_at_fork(after_in_parent=lambda: os.kill(os.getpid(), signal.SIGTERM))
            try:
                in_child(lambda: time.sleep(60))
                said.write_text("not stopped")
            except stop.TrainingInterrupted as stopped:
                with_children = True
                try:
                    os.waitpid(-1, os.WNOHANG)
                except ChildProcessError:
                    with_children = False
                said.write_text(f"{stopped.signal_name}, children left: {with_children}")
            stage.leave()
        finally:
            os._exit(0)
    os.waitpid(sandbox, 0)
    assert said.read_text() == "SIGTERM, children left: False"


def test_a_cancel_swallowed_by_a_callback_still_ends_the_child_and_leaves_no_half_picture(tmp_path):
    """Found by a hostile user: the child's cancel (SystemExit from its handler) landed in a matplotlib
    weakref callback, where Python prints "Exception ignored" and goes on. Here it lands in one as the
    child writes a picture: the child must leave at once, the temporary it was writing removed."""
    import sys
    import weakref

    from nnexp.atomic import write_atomically

    class Node:
        pass

    def cancel_lands_in_a_callback(picture) -> None:
        picture.write(b"half a picture")
        node = Node()
        keep = weakref.ref(node, lambda _ref: (_ for _ in ()).throw(SystemExit(1)))  # as the handler raises
        del node  # the callback runs, raises, and Python swallows it
        assert keep() is None
        picture.write(b" and the rest")

    child = os.fork()
    if child == 0:
        try:
            sys.unraisablehook = forked._leave_if_cancel_was_swallowed  # as a forked child sets it
            write_atomically(tmp_path / "picture.png", cancel_lands_in_a_callback, durable=False)
        finally:
            os._exit(0)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 1
    assert list(tmp_path.iterdir()) == []
