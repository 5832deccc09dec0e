"""The one owner of nnexp's stop signals: SIGINT, SIGTERM, and the SIGUSR1/SIGUSR2 a scheduler warns with.

What a signal should do depends on what the process is doing, so a caller enters a state and never
installs a handler itself; this is the only module that calls signal.signal. States nest: leaving one
brings back the answers of the one below it, and leaving the last puts back the handlers that were there
before (a program's own around `nnexp.run`; submitit's, which requeues a job once its run has stopped).

Standard library only, and no handler imports anything: `nnexp` enters STARTING before anything heavy
loads, and a module interrupted half-way through its import cannot be imported again.
"""

from __future__ import annotations

import enum
import os
import signal
import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)  # this order: a caught SIGTERM means SIGINT is caught too
# What a scheduler sends before it stops a job at its time limit or pre-empts it (SLURM --signal, submitit)
PREEMPTION_SIGNALS = (signal.SIGUSR1, signal.SIGUSR2)


class State(enum.Enum):
    """What the process is doing, which decides what a stop signal does."""

    STARTING = "starting"  # nnexp loads, composes, claims its folder: nothing to save; `on_stop` ends it
    BUILDING = "building"  # a run is set up, or works with no batch boundary to wait for: stop at once
    TRAINING = "training"  # the first signal stops the run at the next batch boundary
    SAVING = "saving"  # a stop was asked for: the run checkpoints and records; a second signal stops at once
    TOOL = "tool"  # nnexp-report/-predict/-generate: one line, then SystemExit so `finally` blocks run
    CLEANING_UP = "cleaning up"  # a stopped tool removes what it was writing: a second Ctrl-C is ignored


_ANSWERED = {  # the signals each state answers; any other keeps the handler that was there before
    State.STARTING: STOP_SIGNALS,
    State.BUILDING: (*STOP_SIGNALS, *PREEMPTION_SIGNALS),
    State.TRAINING: (*STOP_SIGNALS, *PREEMPTION_SIGNALS),
    State.SAVING: (*STOP_SIGNALS, *PREEMPTION_SIGNALS),
    State.TOOL: STOP_SIGNALS,
    State.CLEANING_UP: STOP_SIGNALS,
}


class TrainingInterrupted(BaseException):
    """Raised by a run's stop signal (at once while it is built, at a batch boundary while it trains); exit
    code 128 + signal number. `requeue`: a pre-emption signal for which a scheduler (submitit) has its own
    handler, which requeues the job once the run has stopped and checkpointed.

    A BaseException, as KeyboardInterrupt is: a library's `except Exception` (MLflow wraps whatever
    its request raised) must not swallow a stop."""

    def __init__(self, signum: int, requeue: bool = False) -> None:
        self.signum = signum
        self.requeue = requeue
        self.signal_name = signal.Signals(signum).name
        self.exit_code = 128 + signum
        super().__init__(f"interrupted by {self.signal_name}")


class Stage:
    """One caller's place in the controller: the state it is in, and the signal that asked it to stop."""

    def __init__(
        self, controller: StopController, state: State, name: str, on_stop: Callable[[int], None] | None
    ) -> None:
        self.controller = controller
        self.state = state
        self.name = name  # the program a tool's one line names
        self.on_stop = on_stop  # STARTING's answer: the caller's, as only it knows what to release
        self.requested: int | None = None  # TRAINING's first signal, acted on at the batch boundary
        self.notice: Any = None  # the thread that says a stop was asked for (_say_from_another_thread)

    def switch(self, state: State) -> None:
        """Go on in another state (a run built and now training; a tool stopped and now cleaning up)."""
        self.state = state
        if self in self.controller._stages:  # one entered off the main thread answers nothing
            self.controller._install()

    def check(self) -> None:
        """At a batch boundary: stop if a signal asked for it."""
        if self.requested is not None:
            raise TrainingInterrupted(self.requested, self.controller.requeues(self.requested))

    def leave(self) -> None:
        self.controller._leave(self)

    def __enter__(self) -> Stage:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.leave()

    def answer(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if self.state is State.STARTING:
            assert self.on_stop is not None  # StopController.enter requires it
            self.on_stop(signum)
        elif self.state in (State.TOOL, State.CLEANING_UP):
            self.switch(State.CLEANING_UP)
            sys.stderr.write(f"{self.name}: interrupted by {name}\n")
            raise SystemExit(128 + signum)
        elif self.state is State.TRAINING:
            self.requested = signum
            self.switch(State.SAVING)
            self.notice = _say_from_another_thread(
                "%s received: stopping after this batch (send it again to stop at once)", name
            )
        else:  # BUILDING, SAVING
            # Remembered too: raised inside a library's bare `except:` (an optional import, a C callback)
            # the exception is lost, and the next check (a batch boundary, the end of set-up) raises again.
            self.requested = self.requested or signum
            raise TrainingInterrupted(signum, self.controller.requeues(signum))


class StopController:
    """Holds the stages entered, innermost last, and the handlers that were there before nnexp's."""

    def __init__(self) -> None:
        self._stages: list[Stage] = []
        self._before: dict[int, Any] = {}  # signal -> the handler nnexp's replaced, put back when done

    def enter(self, state: State, name: str = "nnexp", on_stop: Callable[[int], None] | None = None) -> Stage:
        """Enter `state` until the returned stage is left (or the process ends).

        Off the main thread (nnexp.run in a thread) no handler can be set: the stage answers nothing."""
        if state is State.STARTING and on_stop is None:
            raise ValueError("STARTING needs on_stop: what ends the process before there is a run")
        stage = Stage(self, state, name, on_stop)
        if _on_main_thread():
            self._stages.append(stage)
            self._install()
        return stage

    def requeues(self, signum: int) -> bool:
        """A pre-emption signal that a scheduler's own handler (submitit's) was waiting for."""
        return signum in PREEMPTION_SIGNALS and callable(self._before.get(signum))

    def _leave(self, stage: Stage) -> None:
        if stage in self._stages:
            self._stages.remove(stage)
            self._install()

    def _install(self) -> None:
        """Answer the innermost stage's signals; give every other one back to the handler it had before."""
        answered = _ANSWERED[self._stages[-1].state] if self._stages else ()
        for signum in (*STOP_SIGNALS, *PREEMPTION_SIGNALS):
            if signum in answered:
                ignore = signum == signal.SIGINT and self._stages[-1].state is State.CLEANING_UP
                previous = signal.signal(signum, signal.SIG_IGN if ignore else self._handle)
                self._before.setdefault(signum, previous)
            elif signum in self._before:
                signal.signal(signum, self._before.pop(signum))

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if not self._stages:  # it came as the last stage was left: answer it as the handler before would
            signal.signal(signum, self._before.pop(signum, signal.SIG_DFL))
            os.kill(os.getpid(), signum)
            return
        self._stages[-1].answer(signum)


def _say_from_another_thread(message: str, *args: Any) -> Any:
    """Log a warning from a thread of its own, which waits for the main thread's write to end.

    The handler runs in the main thread wherever it was, even inside a log line's write to nnexp.log or
    the console (a write interrupted by the signal checks for handlers): logging to the same stream from
    there is a re-entrant write, which logging reports with a traceback. logging and threading are loaded
    by then (nnexp.train imports them); not above, as `nnexp` imports this module first."""
    import logging
    import threading

    notice = threading.Thread(
        target=logging.getLogger("nnexp").warning, args=(message, *args), name="nnexp-stop-notice"
    )
    notice.start()
    return notice


def _on_main_thread() -> bool:
    # Only a thread started through `threading` can be another; not imported, it started none (and a
    # starting `nnexp` is spared its import).
    threading = sys.modules.get("threading")
    return threading is None or threading.current_thread() is threading.main_thread()


CONTROLLER = StopController()  # signal handlers belong to the process: one controller for it


def enter(state: State, name: str = "nnexp", on_stop: Callable[[int], None] | None = None) -> Stage:
    """Enter `state` in the process's controller (see StopController.enter)."""
    return CONTROLLER.enter(state, name, on_stop)


def asked_to_stop() -> int | None:
    """The signal that asked the innermost stage to stop, if one has."""
    return CONTROLLER._stages[-1].requested if CONTROLLER._stages else None


def answer_a_swallowed_stop(before: int | None) -> None:
    """Raise the stop a signal asked for since `asked_to_stop()` was `before`, where its answer could
    have been raised inside a callback that swallows exceptions (fork()'s own: logging's) and lost. A
    stop that waits for the batch boundary (TRAINING) keeps waiting for it."""
    stage = CONTROLLER._stages[-1] if CONTROLLER._stages else None
    if stage is None or stage.requested is None or stage.requested == before:
        return
    if stage.state in (State.BUILDING, State.SAVING):
        raise TrainingInterrupted(stage.requested, CONTROLLER.requeues(stage.requested))


def in_forked_child(cancel: int) -> None:
    """The signals of a child forked to work beside the run (nnexp/forked.py). Ctrl-C and a scheduler's
    signals reach the whole process group: they are the run's to answer, so the child ignores them; the run
    then stops the child with `cancel`, on which it leaves as a stopped run would (SystemExit: a file it
    was writing is removed whole)."""
    signal.signal(cancel, _leave_the_child)
    for signum in (*STOP_SIGNALS, *PREEMPTION_SIGNALS):
        signal.signal(signum, signal.SIG_IGN)


def _leave_the_child(_signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(1)
