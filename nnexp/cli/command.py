"""The `nnexp` command: Hydra composes the config, `run` does the rest.

`nnexp --help` answers from the config folder before Hydra is imported; `nnexp --cfg job` imports Hydra
but not torch: what a command does not need is imported where it is needed.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nnexp.cli.hydra_hooks import NOTHING_KEPT, release_claimed_dir, resuming_sweep
from nnexp.cli.usage import asks_for_help, help_text, one_command_at_a_time
from nnexp.errors import ENVIRONMENT_EXIT_CODE, ConfigError, UserError, command_line, exit_with
from nnexp.paths import CONFIG_DIR
from nnexp.sweep.workers import SWEEP_PID_ENV, job_running, stop_when_orphaned, sweep_is_gone

if TYPE_CHECKING:
    from omegaconf import DictConfig

log = logging.getLogger("nnexp")


def _hydra_main(single_run: tuple[list[str], Any] | None = None) -> None:
    """Hydra parses the command line, composes the config and calls `_job` with it (once per sweep job).
    `single_run`: the overrides the preflight composed for one run and the `hydra.mode` it found."""
    import hydra

    from nnexp.cli.job_configs import compose_jobs_once_per_options

    _write_hydra_records_atomically()
    compose_jobs_once_per_options()  # a sweep's jobs: the same options composed once
    if single_run is not None:
        _answer_hydras_mode(*single_run)
    hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="config")(_job)()


def _answer_hydras_mode(overrides: list[str], mode: Any) -> None:
    """Hydra composes the whole config once only to read `hydra.mode` (Hydra.get_mode), then again to run
    it; the preflight has composed these overrides already, so its `hydra.mode` is the answer, once: one
    compose fewer (0.18 s at load 3.5; benchmarks/RESULTS.md, "Drawing off the critical path"). Other
    overrides are Hydra's to compose, as before."""
    from hydra._internal.hydra import Hydra

    hydras_own = Hydra.get_mode

    def get_mode(self: Any, config_name: str | None, overrides: list[str]) -> Any:
        Hydra.get_mode = hydras_own  # asked once per process
        if config_name == "config" and list(overrides) == asked:
            return mode
        return hydras_own(self, config_name=config_name, overrides=overrides)

    asked = list(overrides)
    Hydra.get_mode = get_mode  # type: ignore[method-assign]


def _write_hydra_records_atomically() -> None:
    """Hydra writes .hydra/config.yaml, hydra.yaml and overrides.yaml before nnexp's job starts, with a
    plain open(): a full disk left a 0-byte config.yaml and two chained tracebacks. Its writer is swapped
    for nnexp's atomic one, and a refused write is one line and exit code 4; the run folder, claimed for a
    run that never began, is removed again."""
    import hydra.core.utils as hydra_utils

    if getattr(hydra_utils._save_config, "nnexp", False):
        return

    def save_config(cfg: Any, filename: str, output_dir: Path) -> None:
        from omegaconf import OmegaConf

        from nnexp.atomic import write_atomically
        from nnexp.errors import OutputError, environment_fault

        target = Path(output_dir) / filename
        try:
            Path(output_dir).mkdir(parents=True, exist_ok=True)
            write_atomically(target, OmegaConf.to_yaml(cfg))
        except OSError as error:
            # A run that never began leaves no folder (a sweep's job folder is not claimed: it stays).
            released = release_claimed_dir(Path(output_dir).parent)
            then = "run it again (nothing was kept: the run had not begun)" if released else "run it again"
            fault = environment_fault(error, target, then) or OutputError(f"{target}: {error}: {then}")
            exit_with(fault)  # SystemExit: Hydra's error report catches only Exception

    save_config.nnexp = True  # type: ignore[attr-defined]
    hydra_utils._save_config = save_config


def _job(cfg: DictConfig) -> float | None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from nnexp.sweep.ledger import objective_value, record_stopped_job
    from nnexp.sweep.resume import resumed_job

    hydra_cfg = HydraConfig.get()
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    _unwrap_piped_console()  # again in a launcher's worker process
    if multirun and SWEEP_PID_ENV in os.environ:
        stop_when_orphaned(int(os.environ[SWEEP_PID_ENV]))
        if sweep_is_gone():  # a job queued to this worker before its sweep was stopped
            _record_not_started(Path(hydra_cfg.runtime.output_dir))
            record_stopped_job(Path(hydra_cfg.runtime.output_dir))
            sys.exit(128 + signal.SIGTERM)
    if multirun:  # jobs in one process reuse an unchanged data set (nnexp/data/cache.py)
        from nnexp.data.cache import keep_between_jobs

        keep_between_jobs()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    again = resumed_job(cfg, run_dir) if multirun else None  # in `nnexp -m resume=SWEEP_FOLDER`
    if again is not None and again.skip:
        return again.objective
    assigned = _assigned_in_sweep(cfg, run_dir) if multirun else contextlib.nullcontext()
    with assigned, job_running():  # a worker whose sweep is gone leaves once this has ended
        if again is not None and again.resume:
            result = _run_or_exit(again.cfg, run_dir, multirun=True, resume=True)
        else:
            result = _run_or_exit(cfg, run_dir, multirun=multirun)
    failed_objective = math.nan if cfg.get("objective") else None  # Optuna counts NaN as a failed trial
    if result is None:
        return failed_objective
    try:
        return objective_value(cfg, result.metrics)  # what a sweeper (Optuna) optimises; None without one
    except UserError as error:
        _report(error, multirun)
        return failed_objective


def _assigned_in_sweep(cfg: DictConfig, run_dir: Path) -> contextlib.AbstractContextManager[None]:
    """A parallel sweep job's own GPU and share of the CPU threads, held while it runs."""
    from hydra.core.hydra_config import HydraConfig

    from nnexp.sweep.devices import assigned
    from nnexp.sweep.ledger import sweep_root

    hydra_cfg = HydraConfig.get()
    root = sweep_root(run_dir, hydra_cfg.sweep.subdir)  # not sweep.dir: resolving it claims a folder
    threads = cfg.trainer.get("threads")
    return assigned(hydra_cfg.job.num, hydra_cfg.launcher, str(root), cfg.device.type, threads)


def _run_or_exit(cfg: DictConfig, run_dir: Path, multirun: bool = False, resume: bool = False) -> Any:
    """Run; turn a stop into its exit code and one line: 2 usage, 3 diverged, 130/143 signals."""
    from nnexp.look.end_of_run import DRAWN
    from nnexp.runs.folder import CHECKPOINT_FILE, METRICS_FILE
    from nnexp.runs.run import run
    from nnexp.sweep.devices import job_assignment
    from nnexp.sweep.ledger import record_stopped_job
    from nnexp.train.safeguards import TrainingInterrupted

    try:
        return run(cfg, run_dir, resume=resume, end=DRAWN, assigned=job_assignment())
    except UserError as error:
        fresh = not (multirun or resume)
        if error.exit_code == 2 and fresh and not (run_dir / METRICS_FILE).exists():
            # A mistake found before the first epoch: say it, and leave no folder of a run that never was.
            # (A sweep keeps the job's folder: its summary and the ledger record the failure.)
            release_claimed_dir(run_dir)
        elif error.exit_code == ENVIRONMENT_EXIT_CODE and fresh and not (run_dir / CHECKPOINT_FILE).exists():
            # The machine refused before there was anything to resume: a full disk gets its space back.
            release_claimed_dir(run_dir)
        _report(error, multirun)
        return None
    except TrainingInterrupted as interrupted:
        if interrupted.requeue:  # a cluster's warning: the scheduler requeues the job, which resumes
            from nnexp.sweep.preemption import requeue

            requeue(interrupted.signum, run_dir)  # returns only for a job it will not requeue
            return None
        # A signal stops a whole sweep too, not just its current job; the ledger still gets its line.
        if multirun:
            record_stopped_job(run_dir)
        if multirun:  # the whole sweep stopped: resuming this one job would leave the rest unrun
            sweep = run_dir.parent
            again = command_line("nnexp", "-m", f"resume={sweep}")
            sys.stderr.write(f"nnexp: {interrupted}; resume the sweep with: {again}\n")
        elif (run_dir / CHECKPOINT_FILE).is_file():
            again = command_line("nnexp", f"resume={run_dir}")
            sys.stderr.write(f"nnexp: {interrupted}; resume with: {again}\n")
        elif not (multirun or resume or cfg.get("lr_find")) and release_claimed_dir(run_dir):
            # Stopped while it was set up: as before the folder existed, nothing is kept. So a stopped
            # run leaves either nothing or a run to resume.
            sys.stderr.write(f"nnexp: {interrupted} {NOTHING_KEPT}\n")
        else:  # stopped before there was anything to resume (or an lr range test, which keeps none)
            sys.stderr.write(f"nnexp: {interrupted}; the run folder is {run_dir}\n")
        sys.exit(interrupted.exit_code)
    except KeyboardInterrupt:
        sys.stderr.write(f"nnexp: interrupted; the run folder is {run_dir}\n")
        sys.exit(130)


def _record_not_started(run_dir: Path) -> None:
    from nnexp.runs.folder import RunFolder
    from nnexp.runs.summary import RunSummary

    summary = RunSummary(epochs_completed=0)
    summary.interrupted("the sweep was stopped before this job started")
    RunFolder(run_dir).write_summary(summary)


def _report(error: UserError, multirun: bool) -> None:
    """Alone, a mistake ends the process; in a sweep it ends one job, recorded in its summary and the
    sweep's ledger, and the sweep's exit code says so once every job has run."""
    if not multirun:
        exit_with(error)
    log.error("%s", error)


def main() -> None:
    if asks_for_help(sys.argv[1:]):
        try:
            print(help_text(CONFIG_DIR), flush=True)
        except BrokenPipeError:  # `nnexp --help | head`: the reader has all it wanted
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return
    from hydra._internal.utils import get_args_parser

    from nnexp.cli.hydra_hooks import register_resolvers
    from nnexp.runs.resume import is_resume, log_into, resume_config

    register_resolvers()
    parser = get_args_parser()
    parser.error = _one_line_usage_error  # argparse would print its whole usage first
    args = parser.parse_args()
    if (several := one_command_at_a_time(args)) is not None:  # Hydra's answer is a ValueError traceback
        exit_with(ConfigError(several))
    if is_resume(args.overrides) and args.multirun:
        _resume_sweep(args.overrides)
        return
    if is_resume(args.overrides):
        from nnexp.runs.folder import refuse_unwritable

        try:
            run_dir, cfg = resume_config(args.overrides)
            again = command_line("nnexp", f"resume={run_dir}")
            refuse_unwritable(run_dir, f"resume with: {again}")  # before anything changes
        except UserError as error:
            exit_with(error)
        _unwrap_piped_console()
        log_into(run_dir)
        _run_or_exit(cfg, run_dir, resume=True)
        return
    os.environ[SWEEP_PID_ENV] = str(os.getpid())  # lets sweep workers notice when this process is gone
    composed = None
    if _will_train(args):
        from nnexp.cli.preflight import preflight

        _unwrap_piped_console()
        try:
            composed = preflight(args.overrides, multirun=args.multirun)
        except UserError as error:
            exit_with(error)
    _hydra_main(None if composed is None else (args.overrides, composed.hydra.mode))


def _resume_sweep(overrides: list[str]) -> None:
    """`nnexp -m resume=SWEEP_FOLDER`: Hydra relaunches the sweep's own overrides into its folder, and
    each job skips, resumes or runs (nnexp/sweep/resume.py)."""
    from nnexp.cli.preflight import check_plugins
    from nnexp.runs.folder import hold_for_this_process
    from nnexp.sweep.resume import RESUMING_ENV, drop_lines_to_rewrite, sweep_to_resume

    try:
        sweep = sweep_to_resume(overrides)
        check_plugins(sweep.relaunch)
        hold_for_this_process(sweep.folder)  # one process resumes a sweep at a time
    except UserError as error:
        exit_with(error)
    if sweep.is_search:
        from nnexp.sweep.search import replay_trials

        replayed = replay_trials(sweep.folder, sweep.recorded)
        sys.stderr.write(f"nnexp: the search replays its {replayed} launched trials first\n")
    done = drop_lines_to_rewrite(sweep.folder)
    kept = (
        f"{done} completed job is kept as it is"
        if done == 1
        else f"{done} completed jobs are kept as they are"
    )
    sys.stderr.write(f"nnexp: resuming the sweep in {sweep.folder}: {kept}\n")
    resuming_sweep(sweep.folder)  # a stop while no job runs says how to resume it again
    os.environ[RESUMING_ENV] = str(sweep.folder)
    os.environ[SWEEP_PID_ENV] = str(os.getpid())
    _unwrap_piped_console()
    sys.argv = [sys.argv[0], "-m", *sweep.relaunch]
    _hydra_main()


def _one_line_usage_error(message: str) -> None:
    exit_with(
        ConfigError(
            f"{message}; flags such as -m go before the overrides (nnexp -m key=a,b), nnexp --help lists them"
        )
    )


def _unwrap_piped_console() -> None:
    """In a pipe or a file: tables up to 160 columns (rich's default is 80), no line padded with spaces."""
    if sys.stdout.isatty():
        return
    import rich

    from nnexp.runs.console import PlainLines

    if isinstance(rich.get_console().file, PlainLines):
        return
    width = {} if "COLUMNS" in os.environ else {"width": 160}
    rich.reconfigure(file=PlainLines(sys.stdout, beside_a_log=True), **width)


def _will_train(args: argparse.Namespace) -> bool:
    """False for the commands that only print (--help, --cfg, --info, completion)."""
    printing = (args.help, args.hydra_help, args.cfg, args.info, args.shell_completion)
    return not any(printing) and args.config_path is None and args.config_dir is None


if "hydra.core.utils" in sys.modules:  # a sweep's worker process, handed `_job` by a launcher: the same
    _write_hydra_records_atomically()  # writer for its jobs' .hydra records (it never calls _hydra_main)
