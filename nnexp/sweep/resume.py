"""`nnexp -m resume=SWEEP_FOLDER`: continue a stopped sweep in its own folder, the sweep twin of
`nnexp resume=RUN_FOLDER`.

The sweep's overrides come from its multirun.yaml, so Hydra launches the same jobs under the same
numbers, into the same folder. Each job then looks at its own folder: a job the ledger records as
completed is skipped (nothing in its folder is touched), a job with a checkpoint is resumed exactly as
`nnexp resume=` would, and any other job runs from the start. The ledger keeps one line per job: the
lines of the jobs that run again are dropped when the sweep starts and written anew as they end.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf

from nnexp.atomic import write_atomically
from nnexp.config.trust import UntrustedConfig, check_untrusted
from nnexp.errors import ConfigError, command_line, first_line
from nnexp.sweep.ledger import LEDGER_FILE, mark_recorded, read_ledger, sweep_root
from nnexp.sweep.recorded import check_recorded_overrides, check_recorded_search_space

RESUMING_ENV = "NNEXP_RESUME_SWEEP"  # the sweep folder being resumed; inherited by the launcher's workers
SWEEP_CONFIG = "multirun.yaml"  # Hydra's record of the sweep: its overrides, launcher and sweeper
_OURS = ("hydra.sweep.dir=", "hydra.output_subdir=")  # what a resume adds to the sweep's own overrides
_CHANGEABLE = ("hydra/launcher=", "hydra.launcher.")  # how the rest runs, not what it computes


@dataclass
class SweepToResume:
    folder: Path
    relaunch: list[str]  # the overrides that launch the sweep again, into its folder
    recorded: dict[str, Any]  # its multirun.yaml
    is_search: bool  # an Optuna search: its trials are replayed (nnexp/sweep/search.py)


def sweep_to_resume(overrides: list[str]) -> SweepToResume:
    """What `-m resume=SWEEP_FOLDER [hydra/launcher=... hydra.launcher.*=...]` continues, and how.

    Reads only: a refusal leaves the sweep folder as it was.
    """
    options = dict(arg.split("=", 1) for arg in overrides if arg.startswith("resume="))
    sweep = Path(options["resume"]).absolute()
    extra = [arg for arg in overrides if not arg.startswith("resume=")]
    recorded, sweeper = _read_sweep_config(sweep)
    task = [str(arg) for arg in recorded["hydra"]["overrides"]["task"]]
    hydra = [str(arg) for arg in recorded["hydra"]["overrides"]["hydra"] if not str(arg).startswith(_OURS)]
    check_recorded_overrides([*task, *hydra], sweep / SWEEP_CONFIG)
    check_recorded_search_space((recorded["hydra"].get("sweeper") or {}).get("params"), sweep / SWEEP_CONFIG)
    for arg in extra:
        if arg not in task and not arg.startswith(_CHANGEABLE):
            raise ConfigError(
                f"cannot resume the sweep with {arg}: a resumed sweep keeps its overrides "
                f"({' '.join(task) or 'none'}); only hydra/launcher and hydra.launcher.* may change. "
                f"For other values start a new sweep"
            )
    launcher = [arg for arg in extra if arg.startswith(_CHANGEABLE)]
    kept = [arg for arg in hydra if arg.split("=", 1)[0] not in {a.split("=", 1)[0] for a in launcher}]
    _refuse_code_in_a_job(sweep)  # first: before any job's overrides are composed again
    _refuse_a_changed_config(sweep)
    _refuse_a_running_sweep(sweep)
    relaunch = [*task, *kept, *launcher, f"hydra.sweep.dir={sweep}", "hydra.output_subdir=null"]
    return SweepToResume(sweep, relaunch, recorded, is_search=sweeper.endswith("OptunaSweeper"))


def _read_sweep_config(sweep: Path) -> tuple[dict[str, Any], str]:
    """(the sweep's multirun.yaml, its sweeper's class), or a one-line refusal."""
    saved = sweep / SWEEP_CONFIG
    if not saved.is_file():
        hint = (
            f"it is a run folder: resume it with {command_line('nnexp', f'resume={sweep}')} (no -m)"
            if (sweep / ".hydra").is_dir()
            else f"give the folder that holds {SWEEP_CONFIG} and {LEDGER_FILE}"
        )
        raise ConfigError(f"resume={sweep}: not an nnexp sweep folder (no {SWEEP_CONFIG}); {hint}")
    try:
        recorded = yaml.safe_load(saved.read_text())
        hydra = recorded["hydra"]
        [list(hydra["overrides"][name]) for name in ("task", "hydra")]
        sweeper = hydra.get("sweeper") or {}
        target = str(sweeper.get("_target_", ""))
    except (OSError, ValueError, yaml.YAMLError, KeyError, TypeError) as error:
        raise ConfigError(f"resume={sweep}: cannot read {saved} ({first_line(error)})") from None
    if target.endswith("OptunaSweeper") and sweeper.get("storage"):
        raise ConfigError(
            f"resume={sweep}: the search keeps its study in {sweeper['storage']}, not in memory; nnexp "
            f"replays only in-memory studies (hydra.sweeper.storage=null) from the sweep folder"
        )
    if not target.endswith(("BasicSweeper", "OptunaSweeper")):
        raise ConfigError(
            f"resume={sweep}: a sweep by {target.rsplit('.', 1)[-1] or 'an unknown sweeper'} cannot be "
            f"resumed, only one over listed values or an Optuna search"
        )
    return recorded, target


def _refuse_a_changed_config(sweep: Path) -> None:
    """The config files must still compose each recorded job's config: a sweep whose later jobs ran with
    other defaults would compare things that differ in more than their overrides."""
    from hydra import compose, initialize_config_dir

    from nnexp.paths import CONFIG_DIR

    for job in sorted(sweep.glob("*/.hydra/config.yaml"))[:1]:  # one job: composing costs ~0.3 s
        hydra_dir = job.parent
        try:
            saved = OmegaConf.to_container(OmegaConf.load(hydra_dir / "config.yaml"))
            overrides = [str(arg) for arg in OmegaConf.load(hydra_dir / "overrides.yaml")]
            check_recorded_overrides(overrides, hydra_dir / "overrides.yaml")
            with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
                now = OmegaConf.to_container(compose(config_name="config", overrides=overrides))
        except UntrustedConfig:
            raise
        except Exception as error:  # a damaged record, or overrides today's configs no longer compose
            raise ConfigError(
                f"resume={sweep}: cannot compose job {hydra_dir.parent.name}'s config again "
                f"({first_line(error)[:200]}); start a new sweep"
            ) from None
        changed = _first_difference(saved, now)
        if changed is not None:
            key, before, after = changed
            raise ConfigError(
                f"resume={sweep}: the config has changed since the sweep ran ({key}: {before} in "
                f"{hydra_dir.parent.name}/.hydra/config.yaml, {after} now), so its jobs would not be "
                f"comparable; start a new sweep"
            )


def _refuse_code_in_a_job(sweep: Path) -> None:
    """A job resumed from its folder is built from its saved config and checkpoint: both are checked here,
    before the launch, so a hostile job is one line instead of a failed job inside Hydra."""
    from nnexp.runs.checkpoint import load_checkpoint

    for saved in sorted(sweep.glob("*/.hydra/config.yaml")):
        checkpoint = saved.parent.parent / "checkpoint.pt"
        try:
            config = OmegaConf.to_container(OmegaConf.load(saved), resolve=False)
            stored = load_checkpoint(checkpoint).get("config") if checkpoint.is_file() else None
        except Exception:  # a damaged file: the job names it when it is resumed, as a run's resume does
            continue
        check_untrusted(config, str(saved))
        check_untrusted(stored, str(checkpoint))


def _refuse_a_running_sweep(sweep: Path) -> None:
    """A job another process is training holds its folder's lock: the sweep has not stopped."""
    from nnexp.runs.folder import RunFolder, RunFolderBusy

    for job in sorted(path.parent for path in sweep.glob("*/.hydra")):
        try:
            with RunFolder(job).lock():
                pass
        except RunFolderBusy:
            raise ConfigError(
                f"resume={sweep}: its job {job.name} is still being trained by another process; resume "
                f"the sweep once it has stopped"
            ) from None


def _first_difference(before: Any, after: Any, key: str = "") -> tuple[str, Any, Any] | None:
    if isinstance(before, dict) and isinstance(after, dict):
        for name in sorted(before.keys() | after.keys(), key=str):
            found = _first_difference(before.get(name), after.get(name), f"{key}.{name}".lstrip("."))
            if found is not None:
                return found
        return None
    return None if before == after else (key or "config", before, after)


def drop_lines_to_rewrite(sweep: Path) -> int:
    """Keep the ledger lines of the completed jobs only (written atomically); returns how many."""
    ledger = sweep / LEDGER_FILE
    entries = read_ledger(ledger) if ledger.is_file() else []
    kept = [entry for entry in entries if entry.get("status") == "completed"]
    text = "".join(json.dumps(entry, default=str) + "\n" for entry in kept)
    write_atomically(ledger, text)
    return len(kept)


@dataclass
class ResumedJob:
    skip: bool  # completed before: nothing to do
    resume: bool  # continue from its checkpoint
    cfg: DictConfig | None = None  # the job's saved config, to resume with
    objective: Any = None  # what a skipped job returned when it ran


def resumed_job(cfg: DictConfig, run_dir: Path) -> ResumedJob | None:
    """What this job of a sweep being resumed, or of a requeued job, does; None for a new job."""
    from hydra.core.hydra_config import HydraConfig

    from nnexp.runs.resume import resume_config
    from nnexp.sweep.preemption import was_requeued

    if was_requeued(run_dir):  # a job that a scheduler requeued (nnexp/sweep/preemption.py)
        return ResumedJob(skip=False, resume=True, cfg=resume_config([f"resume={run_dir}"])[1])
    sweep = os.environ.get(RESUMING_ENV)
    hydra_cfg = HydraConfig.get()
    if not sweep or sweep_root(run_dir, hydra_cfg.sweep.subdir).absolute() != Path(sweep):
        return None
    job = hydra_cfg.job.num
    ledger = Path(sweep) / LEDGER_FILE
    entries = read_ledger(ledger) if ledger.is_file() else []
    done = next((e for e in entries if e.get("job") == job and e.get("status") == "completed"), None)
    if done is not None:
        mark_recorded(run_dir)  # its ledger line is there already
        return ResumedJob(skip=True, resume=False, objective=done.get("objective"))
    if (run_dir / "checkpoint.pt").is_file():
        return ResumedJob(skip=False, resume=True, cfg=resume_config([f"resume={run_dir}"])[1])
    if not (run_dir / ".hydra" / "config.yaml").is_file():
        _save_hydra_record(cfg, run_dir)  # the resume turned Hydra's own off, to leave completed jobs be
    return ResumedJob(skip=False, resume=False)


def _save_hydra_record(cfg: DictConfig, run_dir: Path) -> None:
    """.hydra/config.yaml, hydra.yaml and overrides.yaml, as Hydra writes them for a new job."""
    from hydra.core.hydra_config import HydraConfig

    hydra_cfg = OmegaConf.to_container(HydraConfig.get())
    hydra_cfg["output_subdir"] = ".hydra"
    record = run_dir / ".hydra"
    record.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, record / "config.yaml")
    OmegaConf.save(OmegaConf.create({"hydra": hydra_cfg}), record / "hydra.yaml")
    OmegaConf.save(OmegaConf.create(hydra_cfg["overrides"]["task"]), record / "overrides.yaml")


__all__ = ["RESUMING_ENV", "SweepToResume", "drop_lines_to_rewrite", "resumed_job", "sweep_to_resume"]
