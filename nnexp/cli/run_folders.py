"""Where the command line's runs will be written: a writable folder that holds no run and lies in none.

Checked before Hydra makes a folder, so a refused command leaves nothing behind.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from omegaconf import DictConfig

from nnexp.errors import ENVIRONMENT_FAULTS, ConfigError, OutputError
from nnexp.runs.folder import run_above, run_at_or_below


def check_output_root(cfg: DictConfig, multirun: bool) -> Path | None:
    """Run folders will be created under the fixed start of hydra.run.dir: it must be a writable folder.
    Returns the folder when it is named outright (no pattern), to be claimed once every check passed."""
    key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    # Read unresolved: resolving the pattern would claim a folder.
    raw = (cfg.hydra.sweep if multirun else cfg.hydra.run)._get_node("dir")._value()
    fixed = str(raw).removeprefix("${nnexp_new_dir:").split("${", 1)[0] or "."
    if ".." in Path(fixed).parts:  # Hydra would make the folders the '..' climbs out of
        raise ConfigError(f"{key}={fixed}: write the folder without '..', as {os.path.relpath(fixed)}")
    if multirun:
        subdir = str(cfg.hydra.sweep._get_node("subdir")._value())
        if "${" not in subdir or ".." in Path(subdir).parts:
            raise ConfigError(
                f"hydra.sweep.subdir={subdir} would give every job the same folder, or one outside the "
                f"sweep: keep ${{hydra.job.num}} in it (e.g. hydra.sweep.subdir=job_${{hydra.job.num}})"
            )
    if "${" not in str(raw):  # a folder named outright is used as it is: never one that holds runs
        _refuse_a_folder_of_runs(Path(fixed), key)
    elif (around := run_above(Path(fixed) / "new")) is not None:  # a pattern's folders would land in a run
        raise ConfigError(
            f"{key}: its folders would be made under {fixed}, inside the run {around}; "
            f"move that run away or set {key}=another/folder"
        )
    check_writable(Path(fixed), key)
    return Path(fixed) if "${" not in str(raw) else None


def check_writable(fixed: Path, key: str) -> None:
    """ConfigError unless the folders under `fixed` can be made: its nearest existing part must be a
    writable folder."""
    existing = fixed.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(
            f"cannot create run folders under {fixed}: {existing} is a file, not a folder; "
            f"move it away or set {key}=another/folder"
        )
    try:  # the real test of writability (os.access trusts root, even on read-only mounts)
        os.rmdir(tempfile.mkdtemp(prefix=".nnexp-write-test-", dir=existing))
    except OSError as error:
        message = (
            f"cannot create run folders under {fixed}: {existing} is not writable ({error.strerror}); "
            f"run from a writable folder or set {key}=another/folder"
        )
        if error.errno in ENVIRONMENT_FAULTS:  # the machine's refusal (read-only, permission): exit 4
            raise OutputError(message) from None
        raise ConfigError(message) from None


def _refuse_a_folder_of_runs(folder: Path, key: str) -> None:
    inside = run_above(folder)
    if inside is not None:
        raise ConfigError(
            f"{key}={folder} lies inside the run {inside}, and nnexp never writes into one: "
            f"give a folder of its own"
        )
    taken = run_at_or_below(folder)
    if taken is not None:
        held = "holds a run already" if taken == folder else f"holds runs already (e.g. {taken})"
        raise ConfigError(
            f"{key}={folder} {held}, and nnexp never writes over or among them: continue one with "
            f"nnexp resume=RUN_FOLDER, or give a new folder"
        )
