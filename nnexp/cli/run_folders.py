"""Where runs will be written: a writable folder that holds no run and lies in none.

Checked before Hydra (or nnexp.run) makes a folder, so a refused command leaves nothing behind.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from hydra.core.override_parser.types import Override
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


def api_run_folder(
    overrides: list[str], parsed: list[Override], output_dir: str | Path | None
) -> tuple[list[str], Path | None, str]:
    """nnexp.run's overrides for the config, less Hydra's own (`parsed`: Hydra's reading of each), and
    the run folder they or `output_dir` name.

    `hydra.run.dir=FOLDER` names the run folder as on the command line; Hydra's other settings (its
    launcher, sweeper, job and logging) are the `nnexp` command's, which nnexp.run does not start, so
    each is refused rather than ignored. Returns the folder and how it was named (for messages)."""
    kept: list[str] = []
    named: Path | None = None if output_dir is None else Path(output_dir)
    named_as = f"output_dir={output_dir}"
    for line, override in zip(overrides, parsed, strict=True):
        if not override.is_hydra_override():
            kept.append(line)
            continue
        if override.key_or_group != "hydra.run.dir" or override.is_sweep_override():
            raise ConfigError(
                f"{line}: nnexp.run trains in this process, without Hydra's launcher, so Hydra's own "
                f"settings do nothing here; of them it reads hydra.run.dir=FOLDER (as output_dir=FOLDER)"
            )
        folder = str(override.value())
        if "${" in folder or not folder.strip():
            raise ConfigError(
                f"{line}: nnexp.run takes the run folder named outright, not a pattern; give it as "
                f"hydra.run.dir=FOLDER or output_dir=FOLDER, or leave both out for a new outputs/DATE/TIME"
            )
        if named is not None and Path(folder).absolute() != named.absolute():
            raise ConfigError(f"{line} and {named_as} name two run folders: give one of them")
        named, named_as = Path(folder), line
    return kept, named, named_as


def check_api_run_folder(output_dir: str, named_as: str) -> None:
    """The folder nnexp.run was given (`named_as` says how, for the message) is a new, writable one."""
    taken = run_above(Path(output_dir)) or run_at_or_below(Path(output_dir))
    if taken:
        raise ConfigError(
            f"{named_as} is or holds or lies inside the run {taken}, and nnexp never writes "
            f"over or into one: give a new folder (or none, for a new one under outputs/)"
        )
    check_writable(Path(output_dir), named_as.split("=", 1)[0])
