"""Each sweep job's config, as Hydra composes it, with the costly part done once per choice of options.

Hydra's launchers compose every job from scratch (ConfigLoaderImpl.load_sweep_config): the search path,
the defaults list, every config file merged, then the job's other overrides set on the result in their
order (`key=value`, `+key=value`, `++key=value`, `~key`). Only the first steps depend on the job's options
of groups (`optim=sgd`, `+group=option`, `~group`) and Hydra's own settings; a sweep over values
(`seed=0,1,2,3,4`, `optim.lr=0.01,0.1`) composes the same thing each time (117 ms a job, idle; 8 ms
shared: benchmarks/RESULTS.md, "sixth session"). Jobs that choose the same options share that
composition: a copy of it gets the job's other overrides, set as Hydra sets them, and the records Hydra
keeps of them (hydra.overrides.task, hydra.job.override_dirname), which is all Hydra's own composition
would change. tests/test_job_configs.py compares the two, node for node.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from typing import Any

from hydra._internal.config_loader_impl import ConfigLoaderImpl, get_overrides_dirname
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from omegaconf import DictConfig, OmegaConf


def compose_jobs_once_per_options() -> None:
    """From now on, in this process, sweep jobs that choose the same options share one composition."""
    if getattr(ConfigLoaderImpl.load_sweep_config, "nnexp", False):
        return
    once = _OncePerOptions(ConfigLoaderImpl.load_sweep_config)
    ConfigLoaderImpl.load_sweep_config = once  # type: ignore[method-assign]


class _OncePerOptions:
    """ConfigLoaderImpl.load_sweep_config, remembering the composition of each choice of options."""

    nnexp = True

    def __init__(self, hydras_own: Any) -> None:
        self.hydras_own = hydras_own
        self.composed: dict[tuple[Any, ...], DictConfig] = {}

    def __get__(self, loader: ConfigLoaderImpl | None, owner: type | None = None) -> Any:
        if loader is None:  # looked up on the class
            return self
        return lambda master_config, sweep_overrides: self(loader, master_config, sweep_overrides)

    def __call__(
        self, loader: ConfigLoaderImpl, master_config: DictConfig, overrides: list[str]
    ) -> DictConfig:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
        hydra_lines = tuple(OmegaConf.to_container(master_config.hydra.overrides.hydra))  # type: ignore[arg-type]
        if not _shared_safely(parsed, hydra_lines):
            return self.hydras_own(loader, master_config, overrides)
        # As Hydra splits them: the options of groups make the defaults list; every other override is
        # set on the composed config, in the order given (`a=1 ++a=2`: 2)
        is_set = [sets_the_config(override, loader.repository.group_exists) for override in parsed]
        options = [line for line, set_ in zip(overrides, is_set, strict=True) if not set_]
        settings = [override for override, set_ in zip(parsed, is_set, strict=True) if set_]
        key = (master_config.hydra.job.config_name, hydra_lines, tuple(options), os.getcwd())
        if key not in self.composed:
            self.composed[key] = self.hydras_own(loader, master_config, options)
        cfg = copy.deepcopy(self.composed[key])
        ConfigLoaderImpl._apply_overrides_to_config(settings, cfg)
        # What Hydra records of the job's overrides (none is Hydra's own: _shared_safely), in their order
        cfg.hydra.overrides.task = list(overrides)
        cfg.hydra.job.override_dirname = get_overrides_dirname(
            overrides=parsed,
            kv_sep=cfg.hydra.job.config.override_dirname.kv_sep,
            item_sep=cfg.hydra.job.config.override_dirname.item_sep,
            exclude_keys=cfg.hydra.job.config.override_dirname.exclude_keys,
        )
        OmegaConf.copy_cache(from_config=master_config, to_config=cfg)
        return cfg


def _shared_safely(parsed: list[Override], hydra_lines: tuple[str, ...]) -> bool:
    """Whether the job can share a composition: none of its overrides is Hydra's own (the sweepers pass
    the sweep's task overrides only) or a sweep, and the config search path is Hydra's default (one
    a setting adds holds groups `sets_the_config` would not find)."""
    if any(override.is_hydra_override() or override.is_sweep_override() for override in parsed):
        return False
    return not any(line.lstrip("+~").startswith("hydra.searchpath") for line in hydra_lines)


def sets_the_config(override: Override, is_group: Callable[[str], bool]) -> bool:
    """Whether Hydra sets `override` on the composed config (a value, an addition, a removal of a key)
    rather than reading it as a group's option for the defaults list: its own test, in its own words
    (hydra/_internal/defaults_list.py, Overrides). The preflight's job checks split overrides the same way."""
    return isinstance(override.value(), dict) or not is_group(override.key_or_group)
