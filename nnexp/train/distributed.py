"""Data-parallel training over torch.distributed: the process group, each rank's rows of a batch, and the
metrics summed over the ranks.

Every rank builds the same experiment from the same seed and draws the same global batches from the same
(seed, epoch) order; rank r of W trains on rows [r*n//W, (r+1)*n//W) of each batch of n rows, and
DistributedDataParallel sums the gradients weighted by each rank's share of the rows. So W ranks with
trainer.batch_size=B step as one process with batch W*B would (runs/fit.py asks for batches of W*B), and a
resumed run draws the same batches.

Nothing here writes files: rank 0 alone keeps the run folder (runs/launch.py gives the other ranks a
scratch folder of their own).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from nnexp.data.tasks import Task
from nnexp.stop import CONTROLLER, TrainingInterrupted

Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass
class Group:
    """This process's place among the ranks of one run, and what the ranks have agreed on so far."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device  # where the collectives' tensors live: the rank's GPU with nccl, else the CPU
    stop: Any = None  # the run's own StopOnSignal (train/safeguards.py)
    agreed: int | None = None  # the stop signal every rank knows of
    epoch_done: bool = False  # the epoch's batches are all trained: a stop now waits for its checkpoint
    long_epochs: bool = True  # rank 0's last epoch was long (the first counts as long, as in fit.py)
    finish_under_s: float = math.inf
    share: float = 0.0  # this rank's fraction of the current batch's rows: its gradient's weight
    wrapped: dict[int, nn.Module] = field(default_factory=dict)  # id(model) -> its DDP wrapper

    def rows(self, n: int) -> slice:
        """This rank's contiguous share of a batch of `n` rows."""
        return slice(self.rank * n // self.world_size, (self.rank + 1) * n // self.world_size)

    def agree(self, seed: bool = False) -> int:
        """One small all_reduce: whether any rank was asked to stop, rank 0's epoch length, and (`seed`)
        rank 0's draw that seeds every rank's dropout for the epoch. Returns the draw (0 without `seed`)."""
        mine = self.stop.requested if self.stop is not None else None
        message = torch.zeros(3, dtype=torch.int64, device=self.device)
        message[0] = mine or 0
        if self.rank == 0:
            message[1] = int(self.long_epochs)
            if seed:  # rank 0's generator, restored from its checkpoint on resume: the same draw again
                message[2] = int(torch.randint(2**62, ()).item())
        dist.all_reduce(message, op=dist.ReduceOp.MAX)
        signum, long_epochs, draw = (int(value) for value in message.tolist())
        if signum:
            self.agreed = self.agreed or signum
        self.long_epochs = bool(long_epochs)
        return draw

    def interrupted(self) -> TrainingInterrupted:
        assert self.agreed is not None
        return TrainingInterrupted(self.agreed, CONTROLLER.requeues(self.agreed))


_GROUP: Group | None = None


def joined() -> bool:
    """Whether this process is one rank of a data-parallel run."""
    return _GROUP is not None


def world_size() -> int:
    return _GROUP.world_size if _GROUP is not None else 1


def recorded_world_size() -> int | None:
    """summary.json's world_size: the ranks of a data-parallel run; None (not written) for one process."""
    return _GROUP.world_size if _GROUP is not None else None


def join(device_type: str) -> Group:
    """Join the ranks torch's launcher (or torchrun, or a scheduler) described in the environment: RANK,
    WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT. nccl with one GPU per local rank on CUDA, else gloo."""
    global _GROUP
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    cuda = device_type.startswith("cuda") or (device_type == "auto" and torch.cuda.is_available())
    if cuda:
        torch.cuda.set_device(local_rank)  # device=cuda now means this rank's own GPU
        device, backend = torch.device("cuda", local_rank), "nccl"
    else:
        device, backend = torch.device("cpu"), "gloo"
    dist.init_process_group(backend, rank=int(os.environ["RANK"]), world_size=int(os.environ["WORLD_SIZE"]))
    _GROUP = Group(dist.get_rank(), dist.get_world_size(), local_rank, device)
    return _GROUP


def leave() -> None:
    global _GROUP
    if dist.is_initialized():
        dist.destroy_process_group()
    _GROUP = None


class AgreedStop:
    """The run's stop as every rank agrees on it, for runs/fit.py: a signal reaches the ranks at different
    batches, and a rank that stopped alone would leave the others waiting in a collective. The ranks
    agree before every batch (`Group.agree`); a stop is acted on mid-epoch only after a long epoch (as
    one process does), all ranks at the same batch, and otherwise once the epoch is trained and saved."""

    def __init__(self, stop: Any, group: Group, finish_under_s: float) -> None:
        self.stop = stop
        group.stop, group.finish_under_s = stop, finish_under_s
        self.group = group

    @property
    def requested(self) -> int | None:
        return self.group.agreed

    def check(self) -> None:
        if self.group.agreed is not None and self.group.epoch_done:
            raise self.group.interrupted()


def stop_together(stop: Any, finish_under_s: float) -> Any:
    """`stop` itself in one process; among ranks, the stop they agree on (AgreedStop)."""
    if _GROUP is None or stop is None:
        return stop
    return AgreedStop(stop, _GROUP, finish_under_s)


def global_batch_size(batch_size: int) -> int:
    """The rows of one step: trainer.batch_size from each rank."""
    return batch_size * world_size()


def loops(
    task: Task, train_epoch: Callable[..., Any], evaluate_split: Callable[..., Any]
) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """train/build.py's loop functions, run by every rank on its rows, with the metrics of all ranks."""
    group = _GROUP
    assert group is not None

    def train_share(model: nn.Module, batches: Iterable[Batch], *args: Any, **options: Any) -> dict:
        counted = _Count(task)
        rows = _training_rows(group, batches, counted)
        trained = train_epoch(_wrapped(group, model), rows, *args, **options)
        _average_buffers(group, model)  # BatchNorm's running statistics: the same on every rank
        return reduce_metrics(group, trained, counted.count)

    def evaluate_share(model: nn.Module, split: Any, *args: Any, **options: Any) -> dict:
        share = _SplitShare(group, split, task)
        return reduce_metrics(group, evaluate_split(model, share, *args, **options), share.count)

    return train_share, evaluate_share


class _Count:
    def __init__(self, task: Task) -> None:
        self.task, self.count = task, 0

    def add(self, targets: torch.Tensor) -> None:
        self.count += self.task.count(targets)


def _training_rows(group: Group, batches: Iterable[Batch], counted: _Count) -> Iterator[Batch]:
    """This rank's rows of each global batch. A batch with fewer rows than ranks (an epoch's last, at
    most) is skipped by all: a rank with no rows has no loss to average."""
    group.epoch_done = False
    started = time.perf_counter()
    first = True
    for inputs, targets in batches:
        draw = group.agree(seed=first)
        if first:  # dropout differs by rank and is the same again on resume
            torch.manual_seed((draw + group.rank) % 2**63)
            first = False
        if group.agreed is not None and group.long_epochs:
            raise group.interrupted()  # every rank at this same batch
        rows = group.rows(len(targets))
        if rows.stop == rows.start:
            continue
        counted.add(targets[rows])
        group.share = (rows.stop - rows.start) / len(targets)
        yield inputs[rows], targets[rows]
    group.agree()  # the epoch's end: a signal that came during it is known to every rank
    group.epoch_done = True
    group.long_epochs = time.perf_counter() - started >= group.finish_under_s


class _SplitShare:
    """A split as one rank reads it for evaluation: its rows of every batch of W times the size."""

    def __init__(self, group: Group, split: Any, task: Task) -> None:
        self.group, self.split, self.task = group, split, task
        self.carries_state = split.carries_state
        self.count = 0

    def __len__(self) -> int:
        return len(self.split)

    def batches(self, batch_size: int, generator: torch.Generator | None = None) -> Iterator[Batch]:
        for inputs, targets in self.split.batches(batch_size * self.group.world_size, generator):
            rows = self.group.rows(len(targets))
            if rows.stop > rows.start:
                self.count += self.task.count(targets[rows])
                yield inputs[rows], targets[rows]


def reduce_metrics(group: Group, metrics: dict[str, float], count: int) -> dict[str, float]:
    """Each rank's means over its `count` examples (tokens) -> the means over every rank's, the same on
    all of them. Perplexity is exp(mean loss), not a mean; `tokens` (a language model's) is a sum."""
    names = [name for name in metrics if name not in ("perplexity", "tokens")]
    sums = [metrics[name] * count if count else 0.0 for name in names]
    totals = torch.tensor([*sums, float(count)], dtype=torch.float64, device=group.device)
    dist.all_reduce(totals)
    *summed, total = totals.tolist()
    means = {name: value / total if total else math.nan for name, value in zip(names, summed, strict=True)}
    reduced: dict[str, float] = {}
    for name in metrics:  # the columns in the loop's own order
        if name == "perplexity":
            reduced[name] = math.exp(means["loss"]) if not math.isnan(means["loss"]) else math.nan
        elif name == "tokens":
            reduced[name] = int(total)
        else:
            reduced[name] = means[name]
    return reduced


def _wrapped(group: Group, model: nn.Module) -> nn.Module:
    """The model in DistributedDataParallel, made once (it broadcasts rank 0's weights as it is made).
    Evaluation and the views use the model itself: DDP's forward is for training steps only."""
    if id(model) not in group.wrapped:
        device_ids = [group.local_rank] if group.device.type == "cuda" else None
        wrapped = nn.parallel.DistributedDataParallel(
            model, device_ids=device_ids, forward_sync_buffers=False
        )
        wrapped.register_comm_hook(group, _weighted_sum)
        group.wrapped[id(model)] = wrapped
    return group.wrapped[id(model)]


def _weighted_sum(group, bucket):  # type: ignore[no-untyped-def] # DDP reads real annotations, not strings
    """Each rank's mean gradient weighted by its share of the batch's rows, summed over the ranks: the
    whole batch's mean gradient, also for an epoch's last batch split unevenly (DDP's own hook gives every
    rank the same weight)."""
    weighted = bucket.buffer().mul_(group.share)
    return dist.all_reduce(weighted, async_op=True).get_future().then(lambda done: done.value()[0])


@torch.no_grad()
def _average_buffers(group: Group, model: nn.Module) -> None:
    for buffer in model.buffers():
        if buffer.dtype.is_floating_point:
            dist.all_reduce(buffer)
            buffer.div_(group.world_size)
