"""The one door every job's config passes before it runs: `check_job`, which checks a config once.

A config is complete in different places: the command line's at preflight (before Hydra makes a
folder), a sweep job's sampled values only at the run's start, a resumed run's once its saved config
meets the command line's changes. Each of those places calls `check_job`; the rules themselves are
`check_config` (checks.py). The check is a pure function of the config, so a config that passed once
in this process (preflight's, then the same job's at its run) is not checked again.
"""

from __future__ import annotations

import hashlib

from omegaconf import DictConfig, OmegaConf

from nnexp.config.checks import check_config

_PASSED: set[str] = set()  # fingerprints of the configs that passed in this process


def check_job(cfg: DictConfig) -> None:
    """ConfigError naming the first problem in a job's `cfg` (without Hydra's node); once per config."""
    fingerprint = hashlib.sha256(OmegaConf.to_yaml(cfg).encode()).hexdigest()
    if fingerprint in _PASSED:
        return
    check_config(cfg)
    _PASSED.add(fingerprint)
