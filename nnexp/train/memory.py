"""Whether a run fits in the memory it would run in, checked before the first step.

A layer too wide for the machine would otherwise be met by the kernel's out-of-memory killer half-way
through the first batch (exit 137, a folder left `running`, and on a shared machine other people's
processes killed with it). The estimate is a floor, float32: the weights, their gradients and the
optimiser's state, plus each layer's output for a training batch, kept for the backward pass and
matched by its gradient (activation functions doubled, as they keep a copy), or for an evaluation
batch, one layer at a time.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from nnexp.config.machine_checks import check_memory

BYTES = 4  # float32


def memory_needed(counts: dict[str, Any], optimizer_name: str, batch_size: int, eval_batch_size: int) -> int:
    """Bytes the run needs at least, from parameters.json's counts (with the layers' output shapes)."""
    states = 2 if "adam" in optimizer_name.lower() else 1  # Adam's two moments; momentum or a sum
    weights = counts["total"] * BYTES
    layers = counts["layers"]
    outputs = [math.prod(layer["output_shape"]) * BYTES for layer in layers if "output_shape" in layer]
    training = weights * (2 + states) + batch_size * 2 * 2 * sum(outputs)
    evaluation = weights + eval_batch_size * 2 * max(outputs, default=0)
    return max(training, evaluation)


def memory_free(device: torch.device) -> int | None:
    """Bytes free for this run on `device` (a GPU's free memory, the machine's available memory), or None
    where it cannot be read."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def run_needs(counts: dict[str, Any], experiment: Any, trainer: Any) -> tuple[int, int]:
    """(bytes the run needs at least, its training batch size): no batch is bigger than its split."""
    rows = len(experiment.data.train)
    batch_size = rows if trainer.batch_size == "full" else min(int(trainer.batch_size), rows)
    largest = max(len(split) for split in experiment.data.splits().values())
    eval_batch_size = min(int(trainer.eval_batch_size), largest)
    optimizer = type(experiment.optimizer).__name__
    return memory_needed(counts, optimizer, batch_size, eval_batch_size), batch_size


def refuse_what_does_not_fit(counts: dict[str, Any], experiment: Any, trainer: Any) -> None:
    """ConfigError, before the first step, when the run cannot fit in the memory free where it runs."""
    needed, batch_size = run_needs(counts, experiment, trainer)
    device = experiment.device
    check_memory(needed, memory_free(device), counts["total"], batch_size, str(device))
