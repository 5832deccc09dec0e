"""The command line's interpolations, resolved once before the run reads any value: one that names no
key, an unset environment variable or a key that refers to itself is the user's to fix, in one line."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationKeyError, InterpolationResolutionError

from nnexp.errors import ConfigError


def check_interpolations(cfg: DictConfig) -> None:
    """`seed=${oops}`, `${oc.env:UNSET}`, `a=${a}`: said in one line with the key, not a traceback."""
    try:
        OmegaConf.to_container(cfg, resolve=True)
    except InterpolationResolutionError as error:
        key = str(error.full_key)
        written: object = OmegaConf.to_container(cfg, resolve=False)
        for part in key.split("."):  # the value as it was written (a list's item: the key alone)
            written = written.get(part) if isinstance(written, dict) else None
        shown = f"{key}={written}" if isinstance(written, str) else key
        reason = str(error).splitlines()[0]
        if isinstance(error, InterpolationKeyError) or "Environment variable" in reason:
            reason += (
                "; an interpolation names a key of the config (e.g. ${trainer.epochs}) or an environment "
                "variable, with a default (${oc.env:NAME,default})"
            )
        raise ConfigError(f"{shown}: {reason}", key=key) from None
