"""The rules of data-parallel training (trainer.devices, trainer.num_nodes), checked before any worker starts.

torch is not imported here: the launcher hands in what only the machine can say (its GPUs, the
environment a scheduler or torchrun set).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig

from nnexp.errors import ConfigError

# What the ranks of a run on several machines meet through (torchrun's static rendezvous names).
RENDEZVOUS_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK")


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def planned_world_size(cfg: DictConfig) -> int:
    """devices x num_nodes: the ranks a run trains on (1 without the keys, as in an older run's config)."""
    trainer = cfg.trainer
    return int(trainer.get("devices", 1)) * int(trainer.get("num_nodes", 1))


def check_distributed(cfg: DictConfig, env: Mapping[str, str]) -> None:
    """trainer.devices and trainer.num_nodes: whole numbers >= 1; several machines need the rendezvous
    variables; several ranks refuse the options they cannot serve, by name."""
    trainer = cfg.trainer
    for key, example in (("devices", 2), ("num_nodes", 2)):
        value = trainer.get(key, 1)
        if not _whole(value) or value < 1:
            raise ConfigError(
                f"trainer.{key}={value} is not allowed: use a whole number >= 1 (e.g. {example})",
                key=f"trainer.{key}",
            )
    if trainer.get("num_nodes", 1) > 1 and "WORLD_SIZE" not in env:
        missing = [name for name in RENDEZVOUS_ENV if not env.get(name)]
        if missing:
            raise ConfigError(
                f"trainer.num_nodes={trainer.num_nodes} needs {', '.join(missing)} set on every machine "
                f"(the first machine's address and a free port, and this machine's number from 0), "
                f"or start nnexp with torchrun",
                key="trainer.num_nodes",
            )
    if planned_world_size(cfg) == 1:
        return
    size = f"trainer.devices={trainer.devices}" + (
        f" with trainer.num_nodes={trainer.num_nodes}" if trainer.num_nodes > 1 else ""
    )
    device = str(cfg.device.type)
    if cfg.get("lr_find"):
        raise ConfigError(
            f"{size} cannot run a learning-rate range test (lr_find): find the rate with one device, "
            f"then train with {size}",
            key="trainer.devices",
        )
    if device == "mps":
        raise ConfigError(
            f"{size} needs device=cpu or device=cuda: torch.distributed has no backend for mps",
            key="trainer.devices",
        )
    if device.startswith("cuda:"):
        raise ConfigError(
            f"{size} with device={device}: each rank takes its own GPU, so use device=cuda "
            f"(choose the GPUs with CUDA_VISIBLE_DEVICES)",
            key="trainer.devices",
        )


def check_same_world_size(previous: int, now: int, run_dir: str) -> None:
    """A resumed run goes on with the ranks it started with: another count steps on other batches."""
    if previous != now:
        raise ConfigError(
            f"{run_dir} was trained on {previous} rank(s) and this resume asks for {now}: resume it on "
            f"{previous} (trainer.devices x trainer.num_nodes, or torchrun's processes in all)",
            key="trainer.devices",
        )
