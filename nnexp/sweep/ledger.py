"""The sweep's own record: ledger.jsonl at the sweep root, one line per job, written as each job ends.

Hydra prints only the first failure of a sweep, and only after every job has run; the ledger says at
once which jobs finished, which failed and why, and what each reached. A line is appended with one
write to a file opened for appending, so jobs that end together (joblib, submitit) never interleave.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from nnexp.errors import ConfigError

LEDGER_FILE = "ledger.jsonl"

log = logging.getLogger("nnexp")


def sweep_root(run_dir: Path, subdir: str) -> Path:
    """The sweep folder a job's run folder sits in (`subdir` may itself be nested, e.g. `a/b`)."""
    root = Path(run_dir)
    for _ in Path(subdir).parts:
        root = root.parent
    return root


def _read_summary(run_dir: Path) -> dict[str, Any]:
    try:
        summary = json.loads((run_dir / "summary.json").read_text())
    except (OSError, ValueError):  # none yet, or damaged: the ledger still gets its line
        return {}
    return summary if isinstance(summary, dict) else {}


def _entry(
    overrides: list[str], status: str, summary: dict[str, Any], run_dir: Path, root: Path
) -> dict[str, Any]:
    return {
        "job": HydraConfig.get().job.num,
        "overrides": overrides,
        "status": status,
        "run_dir": str(run_dir.relative_to(root)) if run_dir.is_relative_to(root) else str(run_dir),
        "metrics": summary.get("metrics", {}).get("final", {}),
        "epochs_completed": summary.get("epochs_completed"),
        "wall_time_s": summary.get("wall_time_s"),
        "diagnostics": [finding["code"] for finding in summary.get("diagnostics", [])],
        **({"exit_code": summary["exit_code"]} if "exit_code" in summary else {}),
    }


def ledger_entry(job_return: JobReturn, run_dir: Path, root: Path) -> dict[str, Any]:
    """Overrides, status and final metrics of one job, from its summary.json when it wrote one."""
    summary = _read_summary(run_dir)
    failed = job_return.status != JobStatus.COMPLETED
    status = summary.get("status", "failed" if failed else "completed")
    if failed and status in ("completed", "running"):
        status = "failed"  # the run finished, and the task function failed after it
    entry = _entry(list(job_return.overrides or []), status, summary, run_dir, root)
    try:
        returned = job_return.return_value  # re-raises a failed job's exception
    except Exception as error:
        entry["error"] = summary.get("error") or f"{type(error).__name__}: {error}"
    else:
        if status != "completed":  # the job returned normally after recording its failure
            entry["error"] = summary.get("error", status)
        elif returned is not None:
            entry["objective"] = returned
    return entry


_RECORDED: set[Path] = set()  # job folders whose line the ledger holds already (a resumed sweep's skips)


def mark_recorded(run_dir: Path) -> None:
    """The job in `run_dir` is in the ledger already: its end adds no second line."""
    _RECORDED.add(Path(run_dir).absolute())


def record_stopped_job(run_dir: Path) -> None:
    """Append the line of a sweep job that a signal stopped: it exits at once, and Hydra's job-end
    callback, which writes the line of every other job, never runs for it."""
    hydra_cfg = HydraConfig.get()
    root = sweep_root(run_dir, hydra_cfg.sweep.subdir)
    summary = _read_summary(run_dir)
    status = summary.get("status", "interrupted")
    entry = _entry(list(hydra_cfg.overrides.task), status, summary, run_dir, root)
    entry["error"] = summary.get("error", "stopped by a signal")
    append_line(root / LEDGER_FILE, entry)


def append_line(path: Path, entry: dict[str, Any]) -> None:
    line = (json.dumps(entry, default=str) + "\n").encode()
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(descriptor, line)
    finally:
        os.close(descriptor)


def read_ledger(path: Path) -> list[dict[str, Any]]:
    """The ledger's entries in job order; a damaged line is named in a warning and left out."""
    entries = []
    for number, line in enumerate(Path(path).read_text(errors="replace").splitlines(), start=1):
        try:
            entry = json.loads(line) if line.strip() else None
        except ValueError:
            entry = None
            log.warning("%s: line %d is damaged and left out: %.60s", path, number, line)
        if isinstance(entry, dict):
            entries.append(entry)
    return sorted(entries, key=lambda entry: entry.get("job", 0) if isinstance(entry.get("job"), int) else 0)


class SweepLedger(Callback):
    """Appends each finished job of a multirun to <sweep folder>/ledger.jsonl; at the end of the sweep,
    exits non-zero with one line when any job did not complete."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        # Hydra's basic sweeper records the sweep's config in multirun.yaml; Optuna's does not, and
        # `nnexp -m resume=SWEEP_FOLDER` reads the search's overrides and space from it.
        if not str(config.hydra.sweeper.get("_target_", "")).endswith("BasicSweeper"):
            OmegaConf.save(config, Path(str(config.hydra.sweep.dir)) / "multirun.yaml")

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        ledger = Path(str(config.hydra.sweep.dir)) / LEDGER_FILE
        entries = read_ledger(ledger) if ledger.is_file() else []
        unfinished = [entry for entry in entries if entry["status"] != "completed"]
        if unfinished:
            counts = Counter(entry["status"] for entry in unfinished)
            detail = ", ".join(f"{number} {status}" for status, number in sorted(counts.items()))
            sys.stderr.write(
                f"nnexp: {len(unfinished)} of {len(entries)} sweep jobs did not complete ({detail}); "
                f"each job's status and error: {ledger}\n"
            )
            # SystemExit passes through Hydra's callback guard, which catches only Exception.
            sys.exit(sweep_exit_code(unfinished))

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        hydra_cfg = HydraConfig.get()
        if hydra_cfg.mode != RunMode.MULTIRUN:
            return
        run_dir = Path(hydra_cfg.runtime.output_dir)
        if run_dir.absolute() in _RECORDED:
            return
        root = sweep_root(run_dir, hydra_cfg.sweep.subdir)
        entry = ledger_entry(job_return, run_dir, root)
        append_line(root / LEDGER_FILE, entry)
        if entry["status"] != "completed":
            log.error("sweep job %s (%s) %s; see %s", entry["job"], " ".join(entry["overrides"]),
                      entry["status"], root / LEDGER_FILE)  # fmt: skip


def sweep_exit_code(unfinished: list[dict[str, Any]]) -> int:
    """3 when every job that did not complete diverged, 2 when each was refused for a mistake in its
    settings or data, 4 when the machine refused each one's writes (a full disk, a read-only folder), as
    a single run would exit; else 1."""
    if all(entry["status"] == "diverged" for entry in unfinished):
        return 3
    for code in (2, 4):
        if all(entry.get("exit_code") == code for entry in unfinished):
            return code
    return 1


def objective_value(cfg: DictConfig, final_metrics: dict[str, float]) -> float | None:
    """The final metric `cfg.objective` names (e.g. val_accuracy), for a sweeper to optimise."""
    column = cfg.get("objective")
    if column is None:
        return None
    if column not in final_metrics:
        choices = ", ".join(sorted(final_metrics))
        raise ConfigError(f"objective={column} is not a final metric of this run: use one of {choices}")
    return float(final_metrics[column])


__all__ = ["LEDGER_FILE", "SweepLedger", "objective_value", "read_ledger", "record_stopped_job", "sweep_root"]
