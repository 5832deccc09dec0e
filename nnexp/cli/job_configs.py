"""Each sweep job's config, as Hydra composes it, with the costly part done once per choice of options.

Hydra's launchers compose every job from scratch (ConfigLoaderImpl.load_sweep_config): the search path,
the defaults list, every config file merged, then the job's `key=value` overrides set on the result.
Only the first steps depend on the job's options (`optim=sgd`, `+extra=...`, Hydra's own settings); a
sweep over values (`seed=0,1,2,3,4`, `optim.lr=0.01,0.1`) composes the same thing each time (~0.25 s a
job here). Jobs that choose the same options share that composition: a copy of it gets the job's own
values and the records Hydra keeps of them (hydra.overrides.task, hydra.job.override_dirname), which is
all Hydra's own composition would change. tests/test_job_configs.py compares the two, node for node.
"""

from __future__ import annotations

import copy
import os
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
        is_value = [_sets_a_value(loader, override) for override in parsed]
        options = [line for line, value in zip(overrides, is_value, strict=True) if not value]
        values = [override for override, value in zip(parsed, is_value, strict=True) if value]
        hydra_lines = tuple(OmegaConf.to_container(master_config.hydra.overrides.hydra))  # type: ignore[arg-type]
        key = (master_config.hydra.job.config_name, hydra_lines, tuple(options), os.getcwd())
        if key not in self.composed:
            self.composed[key] = self.hydras_own(loader, master_config, options)
        cfg = copy.deepcopy(self.composed[key])
        ConfigLoaderImpl._apply_overrides_to_config(values, cfg)
        # What Hydra records of the job's own overrides, in their order (Hydra's settings are options)
        task = [override for override in parsed if not override.is_hydra_override()]
        cfg.hydra.overrides.task = [override.input_line for override in task]
        cfg.hydra.job.override_dirname = get_overrides_dirname(
            overrides=task,
            kv_sep=cfg.hydra.job.config.override_dirname.kv_sep,
            item_sep=cfg.hydra.job.config.override_dirname.item_sep,
            exclude_keys=cfg.hydra.job.config.override_dirname.exclude_keys,
        )
        OmegaConf.copy_cache(from_config=master_config, to_config=cfg)
        return cfg


def _sets_a_value(loader: ConfigLoaderImpl, override: Override) -> bool:
    """A plain `key=value` on the job's own config: what Hydra sets after composing (not a group's
    option, an addition, a removal, a package, a sweep or one of Hydra's own settings)."""
    return not (
        override.is_hydra_override()
        or override.is_sweep_override()
        or override.is_add()
        or override.is_force_add()
        or override.is_delete()
        or override.package is not None
        or isinstance(override.value(), dict)
        or loader.repository.group_exists(override.key_or_group)
    )
