"""The `nnexp` command: Hydra composes the config, `run` does the rest.

Only Hydra is imported up front, so `nnexp --help` and `nnexp --cfg job` answer without torch.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

import hydra
import rich
from hydra._internal.utils import get_args_parser
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from nnexp.errors import UserError, exit_with
from nnexp.hydra_hooks import register_experiments, register_resolvers
from nnexp.paths import CONFIG_DIR
from nnexp.preflight import preflight

log = logging.getLogger("nnexp")


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="config")
def _hydra_main(cfg: DictConfig) -> None:
    from nnexp.runner import run

    hydra_cfg = HydraConfig.get()
    try:
        run(cfg, Path(hydra_cfg.runtime.output_dir))
    except UserError as error:
        if hydra_cfg.mode == RunMode.MULTIRUN:
            log.error("%s", error)
            raise  # the launcher records the failed job and runs the others
        exit_with(error)
    except KeyboardInterrupt:
        sys.stderr.write(f"nnexp: interrupted; the run folder is {hydra_cfg.runtime.output_dir}\n")
        sys.exit(130)


def main() -> None:
    if not sys.stdout.isatty() and "COLUMNS" not in os.environ:
        # Rich wraps at 80 columns when piped; log files and CI read better unwrapped.
        rich.reconfigure(width=160)
    register_resolvers()
    register_experiments()  # before Hydra composes: `experiment=NAME` reads the ConfigStore
    args = get_args_parser().parse_args()
    if _will_train(args):
        try:
            preflight(args.overrides, multirun=args.multirun)
        except UserError as error:
            exit_with(error)
    _hydra_main()


def _will_train(args: argparse.Namespace) -> bool:
    """False for the commands that only print (--help, --cfg, --info, completion)."""
    printing = (args.help, args.hydra_help, args.cfg, args.info, args.shell_completion)
    return not any(printing) and args.config_path is None and args.config_dir is None
