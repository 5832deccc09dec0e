"""`nnexp resume=RUN_FOLDER [key=value ...] [force=true]`: continue a stopped run in its own folder.

The run's saved config is the config; a change on the command line is refused unless forced, since a
resumed run that differs from its start is no longer the run its folder describes.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from nnexp.errors import ConfigError

SAVED_CONFIG = Path(".hydra") / "config.yaml"


def is_resume(overrides: list[str]) -> bool:
    return any(arg.startswith("resume=") for arg in overrides)


def resume_config(overrides: list[str]) -> tuple[Path, DictConfig]:
    """(run folder, the config to continue with) from `resume=...` and any other overrides."""
    options = dict(arg.split("=", 1) for arg in overrides if arg.startswith(("resume=", "force=")))
    changes = [arg for arg in overrides if not arg.startswith(("resume=", "force="))]
    run_dir = Path(options["resume"])
    saved = run_dir / SAVED_CONFIG
    if not saved.is_file():
        raise ConfigError(
            f"resume={run_dir}: not an nnexp run folder (no {SAVED_CONFIG}); give the run's folder"
        )
    cfg = OmegaConf.load(saved)
    OmegaConf.set_struct(cfg, True)
    try:
        changed = OmegaConf.merge(cfg, OmegaConf.from_dotlist(changes))
    except OmegaConfBaseException as error:
        raise ConfigError(f"cannot resume with {' '.join(changes)}: {str(error).splitlines()[0]}") from None
    differences = _differences(cfg, changed)
    if differences and options.get("force", "false").lower() != "true":
        listed = ", ".join(f"{key}: {old} -> {new}" for key, (old, new) in differences.items())
        raise ConfigError(f"resuming with a different config ({listed}): add force=true to resume anyway")
    if differences:
        OmegaConf.save(changed, saved)  # the folder keeps describing the run it holds
    return run_dir, changed


def log_into(run_dir: Path) -> None:
    """The console and the run's own log file, as a Hydra run has them."""
    from nnexp.runs.console import ConsoleLogHandler

    file_handler = logging.FileHandler(run_dir / "nnexp.log", mode="a")
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
