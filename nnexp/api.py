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
    from nnexp.runs.run import RunResult


def compose(overrides: Sequence[str] = ()) -> DictConfig:
    """The config `nnexp OVERRIDES...` runs (without Hydra's own node)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from nnexp.cli.hydra_hooks import register_resolvers
    from nnexp.paths import CONFIG_DIR

    register_resolvers()
    GlobalHydra.instance().clear()  # a notebook may have initialised Hydra before
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return hydra_compose(config_name="config", overrides=list(overrides))


def run(overrides: Sequence[str] = (), output_dir: str | Path | None = None) -> RunResult:
    """Train and evaluate the experiment `overrides` describe, in this process.

    Returns a RunResult: `.metrics` (final values, e.g. test_accuracy), `.model` (the trained
    nn.Module), `.run_dir` (metrics.csv, summary.json, checkpoint.pt, learning_curves.png),
    `.summary` and `.status`. The run folder is a new outputs/<date>/<time> under the current folder
    unless `output_dir` names one. A sweep preset (`experiment=compare_*`) runs its base point only:
    run sweeps with the `nnexp -m` command.
    """
    from nnexp.cli.hydra_hooks import claim_named_dir, claim_new_dir, release_claimed_dir
    from nnexp.errors import ConfigError, UserError
    from nnexp.runs.folder import run_above, run_at_or_below
    from nnexp.runs.run import run as run_config

    overrides = list(overrides)
    cfg = compose(overrides)
    if output_dir is None:
        output_dir = claim_new_dir(time.strftime("outputs/%Y-%m-%d/%H-%M-%S"))
    else:
        output_dir = os.path.abspath(output_dir)  # 'a/../run' names run: checked as what it names
        taken = run_above(Path(output_dir)) or run_at_or_below(Path(output_dir))
        if taken:
            raise ConfigError(
                f"output_dir={output_dir} is or holds or lies inside the run {taken}, and nnexp never writes "
                f"over or into one: give a new folder (or none, for a new one under outputs/)"
            )
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
        return run_config(cfg, run_dir)
    except UserError as error:
        if error.exit_code == 2 and not (run_dir / "metrics.csv").exists():
            release_claimed_dir(run_dir)  # as on the command line: a mistake leaves no folder
        raise
    finally:
        logger.removeHandler(log_file)
        logger.setLevel(previous_level)
        log_file.close()


__all__ = ["compose", "run"]
