"""One stop controller (nnexp/stop.py) answers every stop signal, by the state the process is in.

In-process: each test raises real signals in this process and leaves every state it entered, so the
handlers pytest had are back afterwards. The subprocess tests (test_signal_faults.py, test_tool_signals.py,
test_safety.py, test_preemption.py) show the same answers from the console scripts.
"""

from __future__ import annotations

import ast
import contextlib
import logging
import signal
import threading
from pathlib import Path

import pytest

from nnexp.stop import State, StopController, TrainingInterrupted

PACKAGE = Path(__file__).resolve().parents[1] / "nnexp"


def a_program_s_own_handler(signum, frame):
    raise AssertionError("nnexp's state should have answered this signal")


@pytest.fixture
def own_handlers():
    """SIGTERM and SIGUSR2 handled by the program around nnexp (a notebook's; submitit's for SIGUSR2)."""
    before = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGUSR2)}
    for signum in before:
        signal.signal(signum, a_program_s_own_handler)
    yield
    for signum, handler in before.items():
        signal.signal(signum, handler)


def test_one_module_installs_signal_handlers():
    installers = {
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "signal.signal"
    }
    assert installers == {"stop.py"}


def test_while_a_run_is_built_a_signal_stops_it_at_once_with_its_exit_code():
    with StopController().enter(State.BUILDING), pytest.raises(TrainingInterrupted) as stopped:
        signal.raise_signal(signal.SIGTERM)
    assert stopped.value.exit_code == 143 and str(stopped.value) == "interrupted by SIGTERM"
    assert not stopped.value.requeue


def test_a_stop_a_library_swallowed_while_the_run_was_built_is_acted_on_at_the_next_check():
    with StopController().enter(State.BUILDING) as stage:
        # a library's bare `except:` (an optional import) around the moment the signal lands
        with contextlib.suppress(BaseException):
            signal.raise_signal(signal.SIGTERM)
        with pytest.raises(TrainingInterrupted) as stopped:
            stage.switch(State.TRAINING)
            stage.check()
    assert stopped.value.exit_code == 143


def test_while_it_trains_the_first_signal_waits_for_the_batch_boundary_and_a_second_stops_at_once(caplog):
    with StopController().enter(State.BUILDING) as stage:
        stage.switch(State.TRAINING)
        signal.raise_signal(signal.SIGINT)  # noted, not raised: the batch finishes
        assert stage.requested == signal.SIGINT and stage.state is State.SAVING
        stage.notice.join()  # said from a thread of its own: never a re-entrant write to a log's stream
        assert "SIGINT received: stopping after this batch (send it again to stop at once)" in caplog.text
        with pytest.raises(TrainingInterrupted) as at_the_boundary:
            stage.check()
        assert at_the_boundary.value.exit_code == 130
        with pytest.raises(TrainingInterrupted) as twice:
            signal.raise_signal(signal.SIGINT)  # Ctrl-C twice: while it saves, at once
        assert twice.value.exit_code == 130


class AStreamThatRefusesReentrantWrites:
    """As io.BufferedWriter: a write that starts while one is under way (a signal's handler running inside
    it) raises "reentrant call"; the first write here is the one a Ctrl-C interrupts."""

    def __init__(self):
        self.lines, self.writing, self.interrupted = [], False, False

    def write(self, text):
        if self.writing:
            raise RuntimeError("reentrant call")
        self.writing = True
        try:
            if not self.interrupted:
                self.interrupted = True
                signal.raise_signal(signal.SIGINT)
            self.lines.append(text)
        finally:
            self.writing = False

    def flush(self):
        pass


def test_the_stop_notice_never_writes_into_a_log_line_the_signal_interrupted(capsys):
    stream = AStreamThatRefusesReentrantWrites()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("nnexp")
    logger.addHandler(handler)
    try:
        with StopController().enter(State.BUILDING) as stage:
            stage.switch(State.TRAINING)
            logger.warning("epoch 3/10")  # the Ctrl-C lands while this line is written
            stage.notice.join()
    finally:
        logger.removeHandler(handler)
    assert "Logging error" not in capsys.readouterr().err
    assert stream.lines[0] == "epoch 3/10\n"
    assert "SIGINT received: stopping after this batch" in stream.lines[1]


def test_leaving_a_run_gives_every_signal_back_to_what_answered_it_before(own_handlers):
    started: list[int] = []
    controller = StopController()
    starting = controller.enter(State.STARTING, on_stop=started.append)
    with controller.enter(State.BUILDING):
        assert signal.getsignal(signal.SIGUSR2) is not a_program_s_own_handler  # the run answers it
    assert signal.getsignal(signal.SIGUSR2) is a_program_s_own_handler  # submitit's, to requeue the job
    signal.raise_signal(signal.SIGTERM)
    assert started == [signal.SIGTERM]  # nnexp starting again (between a sweep's jobs): its own answer
    starting.leave()
    assert signal.getsignal(signal.SIGTERM) is a_program_s_own_handler


def test_a_scheduler_s_warning_requeues_only_where_the_scheduler_waits_for_it(own_handlers):
    controller = StopController()
    with controller.enter(State.BUILDING):
        with pytest.raises(TrainingInterrupted) as warned:
            signal.raise_signal(signal.SIGUSR2)  # submitit's handler was there: it requeues the job
        with pytest.raises(TrainingInterrupted) as alone:
            signal.raise_signal(signal.SIGUSR1)  # no scheduler's handler: a stop to resume, as SIGTERM's
    assert warned.value.requeue and warned.value.exit_code == 140
    assert not alone.value.requeue and alone.value.exit_code == 138
    assert not controller.requeues(signal.SIGTERM)


def test_a_tool_stops_with_one_line_and_then_ignores_ctrl_c_while_it_cleans_up(capsys):
    # A known answer to Ctrl-C before the tool starts (a test process may have been handed SIG_IGN).
    outside = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with StopController().enter(State.TOOL, name="nnexp-report") as stage:
            with pytest.raises(SystemExit) as stopped:
                signal.raise_signal(signal.SIGTERM)
            assert stopped.value.code == 143
            assert capsys.readouterr().err == "nnexp-report: interrupted by SIGTERM\n"
            assert stage.state is State.CLEANING_UP
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN  # the half-written file is removed whole
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, outside)


def test_starting_needs_an_answer_that_ends_the_process():
    with pytest.raises(ValueError, match="on_stop"):
        StopController().enter(State.STARTING)


def test_off_the_main_thread_a_run_sets_no_handler_and_is_never_stopped():
    before = signal.getsignal(signal.SIGTERM)
    seen: list[object] = []

    def run_in_a_thread():
        with StopController().enter(State.BUILDING) as stage:
            stage.switch(State.TRAINING)
            seen.append(signal.getsignal(signal.SIGTERM))
            stage.check()
            seen.append(stage.requested)

    thread = threading.Thread(target=run_in_a_thread)
    thread.start()
    thread.join()
    assert seen == [before, None]


def test_a_stop_between_two_jobs_of_a_sweep_names_the_sweep_to_resume(tmp_path, monkeypatch):
    """Between two jobs the process is starting again: the stop removes a folder nothing was written
    into, and where a sweep's job has written its summary, says how to resume the sweep."""
    from nnexp.cli.entry import said_at_stop
    from nnexp.cli.hydra_hooks import claim_new_dir, release_claimed_dir

    monkeypatch.chdir(tmp_path)
    sweep = Path(claim_new_dir("outputs/multirun/2026-01-01/10-00-00")).absolute()
    try:
        assert said_at_stop(signal.SIGINT) == (
            "nnexp: interrupted by SIGINT before the run began; nothing was kept"
        )
        assert not sweep.exists()
        sweep = Path(claim_new_dir("outputs/multirun/2026-01-01/10-00-00")).absolute()
        (sweep / "0").mkdir()
        (sweep / "0" / "summary.json").write_text('{"status": "completed"}')
        (sweep / "1").mkdir()  # the next job's folder, made by Hydra before the stop: resume runs it
        assert said_at_stop(signal.SIGTERM) == (
            f"nnexp: interrupted by SIGTERM; resume the sweep with: nnexp -m resume={sweep}"
        )
        assert (sweep / "0" / "summary.json").is_file()
    finally:
        release_claimed_dir(sweep)


def test_a_stop_while_a_resumed_sweep_runs_no_job_here_names_it_again(tmp_path, monkeypatch):
    """`nnexp -m resume=SWEEP` on the parallel launcher: its own process runs no job, so a stop finds it
    starting; the sweep folder is not claimed (it holds runs), and is named all the same."""
    from nnexp.cli import hydra_hooks
    from nnexp.cli.entry import said_at_stop

    monkeypatch.setattr(hydra_hooks, "_RESUMED", [])
    hydra_hooks.resuming_sweep(tmp_path / "sweep")
    assert said_at_stop(signal.SIGINT) == (
        f"nnexp: interrupted by SIGINT; resume the sweep with: nnexp -m resume={tmp_path / 'sweep'}"
    )
