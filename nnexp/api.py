"""nnexp from Python and notebooks: `nnexp.run(overrides=[...])` composes the config with Hydra's compose
API, exactly as `nnexp OVERRIDES...` would, trains in this process and returns the result.

    import nnexp
    result = nnexp.run(["experiment=digits_mlp", "trainer.epochs=5"])
    result.metrics["test_accuracy"], result.model, result.run_dir
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from omegaconf import DictConfig, OmegaConf

if TYPE_CHECKING:
    from nnexp.runs.result import RunResult

# Idle OpenMP threads sleep instead of spinning when other work shares the cores, as for the `nnexp`
# command (nnexp/train/threads.py). OpenMP reads the variable once, when torch is imported: when a notebook
# imported torch before this, setting it here would change nothing for this process, so it is left alone
# (set OMP_WAIT_POLICY=PASSIVE before starting Python, or before importing torch, to have it).
if "torch" not in sys.modules:
    from nnexp.train.threads import wait_passively_if_shared

    wait_passively_if_shared(os.environ)


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
    from nnexp.cli.preflight import check_single_run, parse_overrides
    from nnexp.cli.run_folders import api_run_folder, check_api_run_folder
    from nnexp.errors import UserError
    from nnexp.look.end_of_run import DRAWN
    from nnexp.runs.folder import let_go
    from nnexp.runs.run import run as run_config

    overrides = _as_overrides(overrides)
    overrides, named, named_as = api_run_folder(overrides, parse_overrides(overrides), output_dir)
    register_resolvers()
    GlobalHydra.instance().clear()  # a notebook may have initialised Hydra before
    cfg = check_single_run(overrides)  # the command line's checks and messages, before any folder exists
    if named is None:
        output_dir = claim_new_dir(time.strftime("outputs/%Y-%m-%d/%H-%M-%S"))
    else:
        output_dir = os.path.abspath(named)  # 'a/../run' names run: checked as what it names
        check_api_run_folder(output_dir, named_as)
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
        let_go(run_dir)  # the folder is this process's no more: a resume from a terminal may take it
        log_file.close()


__all__ = ["compose", "run"]
