"""Where a run ran: the software and hardware that summary.json records, so runs from different machines
can be compared knowing what differed (a torch upgrade, another GPU, fewer threads)."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from nnexp.train.threads import settle as settle_threads


def provenance(cfg: DictConfig, kept_threads: int | None = None) -> dict[str, Any]:
    """Versions (CUDA and cuDNN are None on a CPU-only build of torch), the device the run trains on, the
    GPUs visible to it, the CPU threads torch uses and why that many (nnexp/train/threads.py: settled here,
    the first thing a run does, and applied the same when the run builds its experiment)."""
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    on_gpu = gpus > 0 and str(cfg.device.type) != "cpu"
    threads = settle_threads(cfg, kept_threads)  # a resumed run: the count it started with
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        # the current device: a parallel sweep job's own GPU once the sweep has assigned it one
        "device_name": torch.cuda.get_device_name() if on_gpu else cpu_name(),
        "gpu_count": gpus,
        "cpu_count": os.cpu_count(),
        "threads": threads.threads,
        "threads_chosen": threads.why,  # "2 of 2 cores free (1-minute load 0.10)", "trainer.threads=1"
        **({"threads_started": threads.started_with} if threads.started_with else {}),
    }


def cpu_name() -> str:
    """The CPU's model name (platform.processor() is empty on most Linux machines)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
