"""A sweep job pre-empted or at its time limit on a cluster: checkpoint, then let the scheduler requeue it.

submitit (hydra/launcher=slurm, submitit_local) sends SIGUSR2 before a job's time limit (SLURM's
--signal may send SIGUSR1) and requeues a job whose handler asks for it. The run stops at the next batch
boundary with its checkpoint and the status `requeued`, as for a Ctrl-C; then submitit's own handler
requeues it, and the requeued job continues the same run folder exactly (`nnexp resume=` semantics).
"""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

from nnexp.errors import command_line

SUMMARY_FILE = "summary.json"


def requeue(signum: int, run_dir: Path) -> None:
    """Hand the stopped job to the scheduler's handler for `signum`, which requeues it and exits.

    Returns only when the scheduler will not requeue it (it timed out `max_num_timeout` times): the job
    then ends `interrupted` at its checkpoint like any unfinished sweep job (its ledger line, the sweep's
    one line and exit code at its end) instead of ending the process without a result, which made the
    sweep's own process end in submitit's traceback.
    """
    name = signal.Signals(signum).name
    handler = signal.getsignal(signum)
    try:
        if callable(handler):
            handler(signum, None)  # submitit: pickles the job again, requeues it, exits
    except SystemExit:
        sys.stderr.write(f"nnexp: {name}: checkpointed; the job is requeued and continues in {run_dir}\n")
        raise
    except Exception as error:  # it will not be requeued (timed out too many times, ...)
        _mark_interrupted(run_dir, f"not requeued: {error}")
        resume = command_line("nnexp", "-m", f"resume={run_dir.parent}")
        sys.stderr.write(f"nnexp: {name}: not requeued ({error}); resume the sweep with: {resume}\n")
        return
    sys.exit(128 + signum)


def was_requeued(run_dir: Path) -> bool:
    """Whether the job in `run_dir` stopped to be requeued, leaving a checkpoint to continue from."""
    try:
        status = json.loads((Path(run_dir) / SUMMARY_FILE).read_text()).get("status")
    except (OSError, ValueError, AttributeError):
        return False
    return status == "requeued" and (Path(run_dir) / "checkpoint.pt").is_file()


def _mark_interrupted(run_dir: Path, error: str) -> None:
    from nnexp.runs.folder import RunFolder
    from nnexp.runs.summary import RunSummary

    folder = RunFolder(run_dir)
    try:
        summary = RunSummary.from_json(folder.read_summary() or {})  # the run's own, as it stopped
    except ValueError:  # not one nnexp wrote: the status and why, at least
        summary = RunSummary()
    summary.interrupted(error)
    folder.write_summary(summary)
