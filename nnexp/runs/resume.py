"""`nnexp resume=RUN_FOLDER [key=value ...] [force=true]`: continue a stopped run in its own folder.

The run's saved config is the config; a change on the command line is refused unless forced, since a
resumed run that differs from its start is no longer the run its folder describes. Nothing in the
folder changes until the checkpoint has been loaded into what the (changed) config builds: a refused
resume leaves every file as it was.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from nnexp.config.checks import REQUIRED_SECTIONS
from nnexp.config.job import check_job
from nnexp.config.trust import check_untrusted, user_targets
from nnexp.errors import ConfigError, command_line, first_line
from nnexp.runs.folder import RunFolder, RunLogFile
from nnexp.runs.summary import RunSummary

if TYPE_CHECKING:
    from nnexp.train.build import Experiment

log = logging.getLogger("nnexp")

SAVED_CONFIG = Path(".hydra") / "config.yaml"
MOST_THREADS = 4096  # a thread count a run folder may hold: 4 per core of the largest machines, and more


def is_resume(overrides: list[str]) -> bool:
    return any(arg.startswith("resume=") for arg in overrides)


def resume_config(overrides: list[str]) -> tuple[Path, DictConfig]:
    """(run folder, the config to continue with) from `resume=...` and any other overrides. Reads only."""
    ours = ("resume=", "force=", "trust=")
    options = dict(arg.split("=", 1) for arg in overrides if arg.startswith(ours))
    changes = [arg for arg in overrides if not arg.startswith(ours)]
    run_dir = Path(options["resume"])
    saved = run_dir / SAVED_CONFIG
    if not saved.is_file():
        raise ConfigError(
            f"resume={run_dir}: not an nnexp run folder (no {SAVED_CONFIG}); give the run's folder"
        )
    try:
        cfg = OmegaConf.load(saved)
    except (OSError, ValueError, yaml.YAMLError, OmegaConfBaseException) as error:
        raise ConfigError(f"resume={run_dir}: cannot read {saved}: {str(error).splitlines()[0]}") from None
    # before anything resolves; the user's own model or loader only when this command names it
    trusted = named_targets(options.get("trust", ""), changes)
    check_untrusted(
        OmegaConf.to_container(cfg, resolve=False),
        str(saved),
        trusted,
        lambda name: f"resume with: {command_line('nnexp', f'resume={run_dir}', f'trust=[{name}]')}",
    )
    missing = [name for name in REQUIRED_SECTIONS if not isinstance(cfg, DictConfig) or name not in cfg]
    if missing or any(not isinstance(cfg[name], DictConfig) for name in REQUIRED_SECTIONS):
        what = f"it has no {missing[0]} section" if missing else "its sections are not the ones nnexp writes"
        raise ConfigError(
            f"resume={run_dir}: {saved} is damaged ({what}), so what the run was cannot be told; "
            f"restore the file, or start a new run"
        )
    OmegaConf.set_struct(cfg, True)
    _refuse_group_swaps(cfg, changes)
    try:
        changed = OmegaConf.merge(cfg, OmegaConf.from_dotlist(changes))
    except OmegaConfBaseException as error:
        reason = str(error).splitlines()[0]
        if "not in struct" in reason and getattr(error, "full_key", None):
            reason = f"the run's config has no key {error.full_key} (a typo?); its keys are in {saved}"
            hydra = [change for change in changes if change.startswith(("hydra.", "hydra/"))]
            if hydra and str(error.full_key).startswith("hydra"):  # hydra.run.dir=X: the folder is the run's
                reason = (
                    f"a resumed run stays in its own folder ({run_dir}) with the Hydra settings it started "
                    f"with; leave out {hydra[0]}, or start a new run to train elsewhere"
                )
        raise ConfigError(f"cannot resume with {' '.join(changes)}: {reason}") from None
    differences = _differences(cfg, changed)
    if differences and options.get("force", "false").lower() != "true":
        listed = ", ".join(f"{key}: {old} -> {new}" for key, (old, new) in differences.items())
        raise ConfigError(f"resuming with a different config ({listed}): add force=true to resume anyway")
    check_job(changed)  # complete here: a forced change is checked like any value, before anything is read
    return run_dir, changed


def named_targets(trust: str, changes: list[str]) -> set[str]:
    """The user's own targets this command trusts: `trust=[mynet.Net,mydata.load]`, or named again
    as `model._target_=mynet.Net`."""
    names = {name.strip() for name in trust.strip().strip("[]").split(",") if name.strip()}
    return names | {
        change.split("=", 1)[1]
        for change in changes
        if change.startswith(("model._target_=", "data._target_="))
    }


def _refuse_group_swaps(cfg: DictConfig, changes: list[str]) -> None:
    """`optim=sgd` names another option of a group; in a saved config it would replace a section with
    a string. A resumed run keeps its model, data and optimiser: only their values may change."""
    for change in changes:
        key, _, value = change.partition("=")
        if isinstance(OmegaConf.select(cfg, key.lstrip("+~")), DictConfig):
            raise ConfigError(
                f"cannot resume with {change}: a resumed run keeps its {key}; change its values "
                f"({key}.KEY=VALUE with force=true), or start a new run with {command_line('nnexp', change)}"
            )


@dataclass
class Resumed:
    """What a stopped run left: its checkpoint and its summary as they were before this resume."""

    checkpoint: dict[str, Any]
    previous: RunSummary
    unchanged: bool  # the config is the one the checkpoint was trained with

    @classmethod
    def load(cls, folder: RunFolder, cfg: DictConfig) -> Resumed:
        from nnexp.runs.checkpoint import load_checkpoint  # torch: not for `nnexp --cfg job`

        checkpoint = load_checkpoint(folder.checkpoint_path)
        # its copy: data as well; the user's own targets only those the config (checked above) names
        check_untrusted(checkpoint.get("config"), str(folder.checkpoint_path), user_targets(cfg))
        trained = int(checkpoint["epoch"])
        if cfg.trainer.epochs < trained:
            raise ConfigError(
                f"trainer.epochs={cfg.trainer.epochs} is fewer than the {trained} epochs {folder.path} has "
                f"trained: give trainer.epochs={trained} or more"
            )
        previous = _previous_summary(folder)
        if previous is None and folder.summary_path.exists():
            raise ConfigError(
                f"{folder.summary_path} is damaged, and a resume continues what it records (when the run "
                f"started, how long it took): restore it, or move it away to resume without that"
            )
        unchanged = checkpoint.get("config") == OmegaConf.to_container(cfg, resolve=True)
        resumed = cls(checkpoint, previous or RunSummary(), unchanged)
        if resumed.completed and trained >= cfg.trainer.epochs and not unchanged:
            raise ConfigError(
                f"{folder.path} completed all {trained} epochs: a resume trains more of them "
                f"(trainer.epochs={trained + 10} force=true); for other changes start a new run"
            )
        return resumed

    @property
    def epoch(self) -> int:
        return int(self.checkpoint["epoch"])

    @property
    def threads(self) -> int | None:
        """The CPU threads the stopped run trained with: a resume keeps them, so its sums run in the same
        order and its numbers continue exactly (nnexp/train/threads.py). Where a resume had fewer cores, the
        count the run started with (`threads_started`)."""
        recorded = self.previous.provenance or {}
        for threads in (recorded.get("threads_started"), recorded.get("threads")):  # a folder is untrusted
            if isinstance(threads, int) and not isinstance(threads, bool) and 0 < threads <= MOST_THREADS:
                return threads
        return None

    @property
    def completed(self) -> bool:
        return self.previous.status == "completed"

    @property
    def is_finished(self) -> bool:
        """Completed, and asked for nothing more: there is nothing to train and nothing to rewrite."""
        return self.completed and self.unchanged

    def restore(self, experiment: Experiment, cfg: DictConfig) -> tuple[int, list[dict[str, Any]]]:
        """Load the training state into `experiment`; refuse in one line when it does not fit.

        Then the optimiser settings the config changed (with force=true) replace the checkpoint's, so
        `optim.lr=0.05` trains at 0.05 from here on.
        """
        from nnexp.runs.checkpoint import CheckpointError, restore_training_state

        try:
            epoch, history = restore_training_state(experiment, self.checkpoint)
        except (RuntimeError, ValueError, KeyError, TypeError) as error:
            raise CheckpointError(
                f"the checkpoint does not fit what this config builds ({first_line(error)[:200]}): a resumed "
                f"run keeps its model and optimiser; resume without that change, or start a new run"
            ) from None
        saved = (self.checkpoint.get("config") or {}).get("optim") or {}
        for key, value in OmegaConf.to_container(cfg.optim, resolve=True).items():
            if key in saved and saved[key] != value:
                _set_optimizer_option(experiment, key, value)
                log.info("optim.%s: %s in the checkpoint, %s from here on", key, saved[key], value)
        return epoch, history


def _previous_summary(folder: RunFolder) -> RunSummary | None:
    """The summary as the stopped run left it; None when there is none, or it is not one nnexp wrote (a
    key of the wrong type: a resume carries its start, its resumes and its time on)."""
    record = folder.read_summary()
    try:
        return RunSummary.from_json(record) if record is not None else None
    except ValueError:
        return None


def _set_optimizer_option(experiment: Experiment, key: str, value: Any) -> None:
    for group in experiment.optimizer.param_groups:
        if key in group:
            group[key] = tuple(value) if isinstance(group[key], tuple) else value
            if key == "lr" and "initial_lr" in group:  # what a schedule counts from
                group["initial_lr"] = value
    scheduler = experiment.scheduler
    if key == "lr" and scheduler is not None and hasattr(scheduler, "base_lrs"):
        scheduler.base_lrs = [value] * len(scheduler.base_lrs)


def save_config_if_changed(folder: RunFolder, cfg: DictConfig) -> None:
    """The folder keeps describing the run it holds: a forced change is written into its config."""
    saved = folder.path / SAVED_CONFIG
    if OmegaConf.to_container(OmegaConf.load(saved)) != OmegaConf.to_container(cfg):
        folder.write_text(SAVED_CONFIG, OmegaConf.to_yaml(cfg))


def log_into(run_dir: Path) -> None:
    """The console and the run's own log file, as a Hydra run has them."""
    from nnexp.runs.console import ConsoleLogHandler

    # delay: the file is opened at the first record, so a refused resume does not touch it
    file_handler = RunLogFile(run_dir / "nnexp.log", mode="a", delay=True)
    file_handler.setFormatter(logging.Formatter("[%(asctime)s][%(levelname)s] %(message)s"))
    console = ConsoleLogHandler(show_time=False, show_level=False, show_path=False, markup=False)
    logging.basicConfig(
        level=logging.INFO, format="%(message)s", handlers=[console, file_handler], force=True
    )


def _differences(before: DictConfig, after: DictConfig) -> dict[str, tuple[Any, Any]]:
    old, new = _flat(OmegaConf.to_container(before)), _flat(OmegaConf.to_container(after))
    return {
        key: (old.get(key), new.get(key))
        for key in sorted(old.keys() | new.keys())
        if old.get(key) != new.get(key)
    }


def _flat(node: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(node, dict):
        return {prefix.rstrip("."): node}
    flat: dict[str, Any] = {}
    for key, value in node.items():
        flat.update(_flat(value, f"{prefix}{key}."))
    return flat
