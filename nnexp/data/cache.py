"""The data of the last sweep job, kept for the next one when its data config is the same.

A sweep's jobs run one after another in one process (Hydra's basic launcher); a sweep over the model or
the optimiser asks for the same data every time. Keeping the one last bundle saves re-reading and
re-splitting it per job, and memory holds at most one data set more than a run does.

What makes a kept bundle safe to hand out again:
- the key: the resolved data config, the seed, the device, and the size and modification time of every
  file the config names (a CSV edited between two jobs is read again);
- the tensors' version counters: an in-place change to any of them since (nothing in nnexp makes one)
  sends the next job back to the files;
- the random states: what building the data drew from Python's and torch's global generators is drawn
  again on a hit (the states after the first build are put back), so models start from the same weights.

It is used only inside `nnexp -m` (see `keep_between_jobs`), where jobs are seconds apart; a single run or
`nnexp.run()` in a notebook always builds its data afresh.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from nnexp.data import DataBundle

_enabled = False
_kept: _Entry | None = None


@dataclass
class _Entry:
    key: str
    bundle: DataBundle
    versions: list[int]
    rng: tuple[torch.Tensor, Any]  # torch's and Python's global random states after the build


def keep_between_jobs(enabled: bool = True) -> None:
    """Called by a sweep's first job: from then on an unchanged data config reuses the last bundle."""
    global _enabled, _kept
    _enabled = enabled
    if not enabled:
        _kept = None


def cached(
    data_cfg: dict[str, Any], seed: int, device: torch.device, build: Callable[[], DataBundle]
) -> DataBundle:
    """`build()`, or the bundle it returned for the same key in this process (inside a sweep only)."""
    global _kept
    if not _enabled:
        return build()
    key = _key(data_cfg, seed, device)
    if _kept is not None and _kept.key == key and _versions(_kept.bundle) == _kept.versions:
        torch.set_rng_state(_kept.rng[0])
        random.setstate(_kept.rng[1])
        return _kept.bundle
    _kept = None  # let the old bundle go before the new one is read
    bundle = build()
    _kept = _Entry(key, bundle, _versions(bundle), (torch.get_rng_state(), random.getstate()))
    return bundle


def _key(data_cfg: dict[str, Any], seed: int, device: torch.device) -> str:
    files = {}
    for value in _strings(data_cfg):
        if os.path.isfile(value):
            stat = os.stat(value)
            files[value] = (stat.st_size, stat.st_mtime_ns)
    return json.dumps([data_cfg, seed, str(device), files], sort_keys=True, default=str)


def _strings(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [text for value in node.values() for text in _strings(value)]
    if isinstance(node, (list, tuple)):
        return [text for value in node for text in _strings(value)]
    return []


def _versions(bundle: DataBundle) -> list[int]:
    """The in-place version of every tensor a split holds (inputs and targets, or a text's tokens)."""
    return [
        value._version
        for split in bundle.splits().values()
        for value in vars(split).values()
        if isinstance(value, torch.Tensor)
    ]
