"""nnexp from Python and notebooks: `nnexp.run(overrides=[...])` composes the config with Hydra's compose
API, exactly as `nnexp OVERRIDES...` would, trains in this process and returns the result.

    import nnexp
    result = nnexp.run(["experiment=digits_mlp", "trainer.epochs=5"])
    result.metrics["test_accuracy"], result.model, result.run_dir
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from omegaconf import DictConfig, OmegaConf

if TYPE_CHECKING:
    from nnexp.runs.result import RunResult


def compose(overrides: Sequence[str] = ()) -> DictConfig:
    """The config `nnexp OVERRIDES...` runs (without Hydra's own node); a mistake in `overrides` is the
    ConfigError the command line prints."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException

    from nnexp.cli.hydra_hooks import register_resolvers
    from nnexp.cli.preflight import check_single_run
    from nnexp.paths import CONFIG_DIR

    overrides = _as_overrides(overrides)
    register_resolvers()
    GlobalHydra.instance().clear()  # a notebook may have initialised Hydra before
    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            return hydra_compose(config_name="config", overrides=overrides)
    except (HydraException, ValueError):  # ValueError: a group given true, null or a number
        check_single_run(overrides)  # raises the command line's one line (did you mean ...?)
        raise


def _as_overrides(overrides: Sequence[str]) -> list[str]:
    """`overrides` as a list of strings, or a TypeError that shows how to write them."""
    if isinstance(overrides, (str, bytes)):
        raise TypeError(
            f"nnexp.run takes a list of overrides, not a string: write "
            f"[{overrides!r}] (one string per override, e.g. ['trainer.epochs=1', 'optim.lr=0.01'])"
        )
    listed = list(overrides)
    wrong = next((item for item in listed if not isinstance(item, str)), None)
    if wrong is not None:
        raise TypeError(
            f"each override is a string such as 'trainer.epochs=1'; got {wrong!r} "
            f"({type(wrong).__name__}) in {listed!r}"
        )
    return listed


def _run_folder(overrides: list[str], output_dir: str | Path | None) -> tuple[list[str], Path | None, str]:
    """The overrides for the config, less Hydra's own, and the run folder they or `output_dir` name.

    `hydra.run.dir=FOLDER` names the run folder as on the command line; Hydra's other settings (its
    launcher, sweeper, job and logging) are the `nnexp` command's, which nnexp.run does not start, so
    each is refused rather than ignored. Returns the folder and how it was named (for messages)."""
    from nnexp.cli.preflight import parse_overrides
    from nnexp.errors import ConfigError

    kept: list[str] = []
    named: Path | None = None if output_dir is None else Path(output_dir)
    named_as = f"output_dir={output_dir}"
    for line, override in zip(overrides, parse_overrides(overrides), strict=True):
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


def run(overrides: Sequence[str] = (), output_dir: str | Path | None = None) -> RunResult:
    """Train and evaluate the experiment `overrides` describe, in this process.

    Returns a RunResult: `.metrics` (final values, e.g. test_accuracy), `.model` (the trained
    nn.Module), `.run_dir` (metrics.csv, summary.json, checkpoint.pt, learning_curves.png),
    `.summary` and `.status`. The run folder is a new outputs/<date>/<time> under the current folder
    unless `output_dir` (or `hydra.run.dir=FOLDER`, as on the command line) names one. A sweep preset
    (`experiment=compare_*`) runs its base point only: run sweeps with the `nnexp -m` command.
    A mistake in `overrides` raises the ConfigError whose message the command line prints, before any
    folder exists; a string instead of a list of them raises TypeError.
    """
    from hydra.core.global_hydra import GlobalHydra

    from nnexp.cli.hydra_hooks import claim_named_dir, claim_new_dir, register_resolvers, release_claimed_dir
    from nnexp.cli.preflight import check_single_run
    from nnexp.cli.run_folders import check_writable
    from nnexp.errors import ConfigError, UserError
    from nnexp.look.end_of_run import DRAWN
    from nnexp.runs.folder import run_above, run_at_or_below
    from nnexp.runs.run import run as run_config

    overrides = _as_overrides(overrides)
    overrides, named, named_as = _run_folder(overrides, output_dir)
    register_resolvers()
    GlobalHydra.instance().clear()  # a notebook may have initialised Hydra before
    check_single_run(overrides)  # the command line's checks and messages, before any folder exists
    cfg = compose(overrides)
    if named is None:
        output_dir = claim_new_dir(time.strftime("outputs/%Y-%m-%d/%H-%M-%S"))
    else:
        output_dir = os.path.abspath(named)  # 'a/../run' names run: checked as what it names
        taken = run_above(Path(output_dir)) or run_at_or_below(Path(output_dir))
        if taken:
            raise ConfigError(
                f"{named_as} is or holds or lies inside the run {taken}, and nnexp never writes "
                f"over or into one: give a new folder (or none, for a new one under outputs/)"
            )
        check_writable(Path(output_dir), named_as.split("=", 1)[0])
        claim_named_dir(output_dir)
    run_dir = Path(output_dir)
    # The same records as a CLI run, so nnexp-report and nnexp-generate read this folder too.
    (run_dir / ".hydra").mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, run_dir / ".hydra" / "config.yaml")
    OmegaConf.save(OmegaConf.create(overrides), run_dir / ".hydra" / "overrides.yaml")

    log_file = logging.FileHandler(run_dir / "nnexp.log")
    log_file.setFormatter(logging.Formatter("[%(asctime)s][%(levelname)s] %(message)s"))
    logger = logging.getLogger("nnexp")
    logger.addHandler(log_file)
    previous_level = logger.level
    logger.setLevel(logging.INFO)
    try:
        return run_config(cfg, run_dir, end=DRAWN)
    except UserError as error:
        if error.exit_code == 2 and not (run_dir / "metrics.csv").exists():
            release_claimed_dir(run_dir)  # as on the command line: a mistake leaves no folder
        raise
    finally:
        logger.removeHandler(log_file)
        logger.setLevel(previous_level)
        log_file.close()


__all__ = ["compose", "run"]
