"""The rules that need the machine a run lands on: its GPU, what that GPU computes in, the memory free.

The same config is sound on one machine and refused on another, so these cannot run with check_config
before the run starts: train/ measures the machine and hands the facts in; the wording stays here.
"""

from __future__ import annotations

from nnexp.errors import ConfigError, first_line


def check_device(name: str, cuda_available: bool) -> None:
    """device=cuda needs a GPU torch can use."""
    if name.startswith("cuda") and not cuda_available:
        raise ConfigError(
            f"device={name}, but this machine has no usable CUDA GPU: use device=cpu or device=auto"
        )


def check_bf16(gpu_name: str, supported: bool) -> None:
    """trainer.precision=bf16 on a GPU needs one that computes in bfloat16."""
    if not supported:
        raise ConfigError(
            f"trainer.precision=bf16, but the GPU {gpu_name} has no bfloat16: use trainer.precision=32"
        )


def check_mps(available: bool) -> None:
    """device=mps needs Apple silicon's GPU, with a torch built for it."""
    if not available:
        raise ConfigError(
            "device=mps, but torch has no usable Apple MPS device here "
            "(torch.backends.mps.is_available() is false): use device=cpu or device=auto"
        )


def check_fp16(device_type: str) -> None:
    """trainer.precision=fp16 is CUDA's mixed precision: float16 autocast with a gradient scaler."""
    if device_type != "cuda":
        raise ConfigError(
            f"trainer.precision=fp16 needs a CUDA GPU, and this run is on {device_type}: "
            f"use trainer.precision=bf16 (or 32)"
        )


def check_model_allocated(cause: BaseException | None) -> None:
    """A model whose weights the machine could not allocate is a config to shrink, not a crash."""
    if isinstance(cause, MemoryError) or "can't allocate memory" in str(cause):
        raise ConfigError(
            f"the model does not fit in this machine's memory ({first_line(cause)}); "
            f"make it smaller (model.hidden, model.channels, ...)"
        )


def check_memory(needed: int, free: int | None, parameters: int, batch_size: int, device: str) -> None:
    """The run's floor of `needed` bytes (train/memory.py's estimate) fits in the `free` bytes there."""
    if free is not None and needed > free:
        raise ConfigError(
            f"this run needs at least {needed / 1e9:.1f} GB ({parameters:,} parameters, their gradients "
            f"and optimiser state, and each layer's outputs for a batch of {batch_size}), more than the "
            f"{free / 1e9:.1f} GB free on {device}: use smaller layers or a smaller trainer.batch_size "
            f"(or trainer.eval_batch_size)"
        )


def check_cpu_count(devices: int, cores: int) -> None:
    """trainer.devices on the CPU: one process per rank, each a whole torch; more than the cores this
    process may use only queue for them (and a thousand would fill the memory before the first step)."""
    if devices > cores:
        raise ConfigError(
            f"trainer.devices={devices} on the CPU, but this process may use {cores} core(s): "
            f"use trainer.devices={max(cores, 1)} or fewer (one process per core), or device=cuda on GPUs",
            key="trainer.devices",
        )


def check_gpu_count(devices: int, gpus: int) -> None:
    """trainer.devices on CUDA: one GPU per rank, so no more ranks than the GPUs torch sees here."""
    if devices > gpus:
        raise ConfigError(
            f"trainer.devices={devices} on CUDA, but this machine has {gpus} GPU(s) torch can use: "
            f"use trainer.devices={max(gpus, 1)} or fewer (or device=cpu for processes on the CPU)",
            key="trainer.devices",
        )
