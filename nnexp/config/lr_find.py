"""`+lr_find=exponential`'s settings (configs/lr_find/exponential.yaml), each checked beside its option.

Read by the config checks before anything is built or printed, and by the range test itself
(nnexp/train/lr_finder.py), which runs with them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

from nnexp.errors import ConfigError


@dataclass(frozen=True)
class LrFinderOptions:
    """configs/lr_find/exponential.yaml, where each setting is explained."""

    start_lr: float = 1e-7
    end_lr: float = 10.0
    num_steps: int = 100
    smoothing: float = 0.98
    stop_factor: float = 4.0
    skip_start: int = 10

    @classmethod
    def from_config(cls, node: Any) -> LrFinderOptions:
        """The options under `lr_find`, each checked and named by its key when it is out of range."""
        options = cls(**{item.name: node[item.name] for item in fields(cls) if item.name in node})
        options._check()
        return options

    def _check(self) -> None:
        def refuse(key: str, allowed: str, example: Any) -> None:
            value = getattr(self, key)
            raise ConfigError(
                f"lr_find.{key}={value} is not allowed: use {allowed} (e.g. lr_find.{key}={example})",
                key=f"lr_find.{key}",
            )

        if not (_number(self.start_lr) and self.start_lr > 0):
            refuse("start_lr", "a finite number > 0", 1e-7)
        if not (_number(self.end_lr) and self.end_lr > self.start_lr):
            refuse("end_lr", f"a finite number above lr_find.start_lr={self.start_lr:g}", 10)
        if not (_number(self.smoothing) and 0 <= self.smoothing < 1):
            refuse("smoothing", "a number in [0, 1)", 0.98)
        if not (_number(self.stop_factor) and self.stop_factor > 1):
            refuse("stop_factor", "a finite number > 1", 4)
        if not (isinstance(self.skip_start, int) and self.skip_start >= 0):
            refuse("skip_start", "a whole number >= 0", 10)
        # A slope needs two points after the skipped ones.
        if not (isinstance(self.num_steps, int) and self.num_steps >= self.skip_start + 3):
            refuse("num_steps", f"a whole number >= lr_find.skip_start + 3 = {self.skip_start + 3}", 100)

    def lr_at(self, step: int) -> float:
        """The lr of step 0, 1, ...: start_lr at the first step, end_lr at the last."""
        return self.start_lr * (self.end_lr / self.start_lr) ** (step / (self.num_steps - 1))


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_lr_find(cfg: Any) -> None:
    """ConfigError for an `lr_find` setting out of range (`+lr_find=exponential lr_find.num_steps=-1`),
    raised by the config checks before anything is built or printed."""
    node = cfg.get("lr_find") if hasattr(cfg, "get") else None
    if node is None:
        return
    if not hasattr(node, "keys"):
        raise ConfigError(
            f"lr_find={node} is not an option's settings: add the range test with +lr_find=exponential",
            key="lr_find",
        )
    LrFinderOptions.from_config(node)


__all__ = ["LrFinderOptions", "check_lr_find"]
