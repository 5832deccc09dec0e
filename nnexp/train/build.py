"""The experiment's objects, built from the config in one place, and the loop functions for its task.

Data flows one way: config -> data (and its spec) -> model (sizes from the spec) -> loss ->
optimiser (given the model's parameters) -> schedules and regularisers. Each build says what it built.
"""

from __future__ import annotations

import contextlib
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from nnexp.config.custom import build_user_model, check_user_outputs, is_custom_target, load_user_data
from nnexp.config.data_fit import check_against_data, check_token_batches
from nnexp.config.machine_checks import check_bf16, check_device, check_fp16, check_model_allocated, check_mps
from nnexp.config.model_fit import check_model_built
from nnexp.config.trust import is_user_target
from nnexp.data import DataBundle, DataSpec, TensorSplit
from nnexp.data import cache as data_cache
from nnexp.data.tasks import task_of
from nnexp.data.text import TokenSplit
from nnexp.errors import UserError
from nnexp.models.init import initialize
from nnexp.train import distributed, threads
from nnexp.train.augment import RandomAffine, build_augment
from nnexp.train.best import BestWeights
from nnexp.train.loop import evaluate, train_one_epoch
from nnexp.train.losses import LossFn, build_loss, resolve_loss_name
from nnexp.train.metrics import metric_names
from nnexp.train.regularization import EarlyStopping, l1_penalty

log = logging.getLogger("nnexp")


@dataclass
class Experiment:
    """Everything a run trains with, built from the config."""

    data: DataBundle
    model: nn.Module
    loss_fn: LossFn
    optimizer: torch.optim.Optimizer
    scheduler: Any | None  # a torch LR scheduler
    plateau_monitor: str | None  # the column ReduceLROnPlateau steps on
    penalty: Any | None
    early_stopping: EarlyStopping | None
    device: torch.device
    augment: RandomAffine | None = None  # applied to the training batches only
    loggers: list[Any] = field(default_factory=list)  # tensorboard, mlflow: given each metrics row
    # The learner checks (nnexp.diagnostics.monitor.Diagnostics), attached by runs/ once the model is built:
    # diagnostics sit above train, which never imports them.
    diagnostics: Any = None
    best: BestWeights | None = None  # the best epoch so far, its weights (trainer.test_on)
    scaler: torch.amp.GradScaler | None = None  # trainer.precision=fp16's gradient scaler (CUDA)


def build(cfg: DictConfig, data_ready: Callable[[DataBundle], Any] | None = None) -> Experiment:
    """Everything `cfg` describes, ready to train. `data_ready(data)` is called once the data is loaded,
    before the model is built: the caller may start work of its own on it (runs/ begins the baselines)."""
    device = resolve_device(cfg.device.type)
    scaler = grad_scaler(cfg.trainer.get("precision", 32), device)  # fp16 off CUDA: refused before the data
    # trainer.threads, a parallel sweep's share, or the cores the machine's load leaves free (threads.py)
    threads.settle(cfg)
    seed_everything(cfg.seed)
    # Inside a sweep, an unchanged data config reuses the last job's tensors (nnexp/data/cache.py).
    data_cfg = OmegaConf.to_container(cfg.data, resolve=True)
    data: DataBundle = data_cache.cached(data_cfg, cfg.seed, device, lambda: _load_data(cfg.data).to(device))
    check_against_data(cfg, data.spec, metric_names(data.spec.task))  # what only the data can decide
    if data_ready is not None:
        data_ready(data)
    regularization = cfg.get("regularization") or {}

    dropout = regularization["dropout"]["p"] if "dropout" in regularization else None
    model = build_model(cfg.model, data.spec, dropout, data.train).to(device)
    if cfg.trainer.get("compile", False):
        model.compile()  # in place: the module and its state_dict keys (so checkpoints) stay as they are

    optim_options = OmegaConf.to_container(cfg.optim, resolve=True)
    if "l2" in regularization:
        optim_options["weight_decay"] = regularization["l2"]["weight_decay"]
    optimizer = _instantiate(optim_options)(model.parameters())

    scheduler, plateau_monitor = None, None
    if cfg.scheduler:
        scheduler_options = OmegaConf.to_container(cfg.scheduler, resolve=True)
        plateau_monitor = scheduler_options.pop("monitor", None)
        scheduler = _instantiate(scheduler_options)(optimizer)

    early_stopping = None
    if "early_stopping" in regularization:
        early_stopping = EarlyStopping(**dict(regularization["early_stopping"]))

    return Experiment(
        data=data,
        model=model,
        loss_fn=build_loss(cfg.loss.name, data.spec),
        optimizer=optimizer,
        scheduler=scheduler,
        plateau_monitor=plateau_monitor,
        penalty=l1_penalty(regularization["l1"]["strength"]) if "l1" in regularization else None,
        early_stopping=early_stopping,
        device=device,
        augment=build_augment(regularization["augment"]) if "augment" in regularization else None,
        best=BestWeights.for_run(
            early_stopping,
            data.val is not None,
            keep_weights=cfg.trainer.get("test_on") == "best",
            eval_train=bool(cfg.trainer.get("eval_train")),
        ),
        scaler=scaler,
    )


def build_model(
    model_cfg: DictConfig, spec: DataSpec, dropout: float | None = None, train: Any = None
) -> nn.Module:
    """Instantiate `model_cfg` with the sizes from the data, then apply its weight initialisation.
    With the training split (`train`), a model=custom one is tried on its first examples: its outputs
    must fit the data's (check_user_outputs)."""
    options = OmegaConf.to_container(model_cfg, resolve=True)
    scheme, std = options.pop("init", "default"), options.pop("init_std", 0.01)
    bias_rule = options.pop("init_bias", None)  # None: the scheme's own rule
    if dropout is not None:
        options["dropout"] = dropout
    target = options.get("_target_")
    # model=custom, torch.nn classes too: sizes only where it takes them (Hydra's _args_ & co: Hydra's way)
    custom = is_user_target(target) or (
        is_custom_target(target) and not any(key.startswith("_") for key in options if key != "_target_")
    )
    try:
        if custom:
            model = build_user_model(options, tuple(spec.input_shape), spec.num_outputs)
        else:
            model = _instantiate(options, input_shape=tuple(spec.input_shape), num_outputs=spec.num_outputs)
    except InstantiationException as error:
        check_model_allocated(error.__cause__)  # too big for this machine: one line, not a traceback
        check_model_built(error.__cause__)  # does not fit the data's shape: the config's mistake, in one line
        raise
    if custom and isinstance(train, TensorSplit) and len(train):
        examples = train.inputs[:2]
        examples = (examples if train.transform is None else train.transform(examples)).cpu()
        check_user_outputs(model, target, examples, spec.task, spec.num_outputs)
    initialize(model, scheme, std, bias_rule)
    return model


def _load_data(data_cfg: DictConfig) -> DataBundle:
    """nnexp's own data set, or the splits of the user's loader (data=custom) as a DataBundle."""
    if is_custom_target(data_cfg.get("_target_")):
        return load_user_data(OmegaConf.to_container(data_cfg, resolve=True))
    return _instantiate(data_cfg)


def _instantiate(config: Any, **kwargs: Any) -> Any:
    """Hydra's instantiate, letting a user error raised by a builder through as itself."""
    try:
        return instantiate(config, _convert_="all", **kwargs)
    except InstantiationException as error:
        if isinstance(error.__cause__, UserError):
            raise error.__cause__ from None
        raise


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        check_device(name, torch.cuda.is_available())
    if name == "mps":
        check_mps(torch.backends.mps.is_available())
    return torch.device(name)


def grad_scaler(precision: int | str, device: torch.device) -> torch.amp.GradScaler | None:
    """fp16's gradients underflow without one: the loss is scaled up before backward, the gradients down."""
    if str(precision) != "fp16":
        return None
    check_fp16(device.type)
    return torch.amp.GradScaler(device.type)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def steps_per_epoch(data: DataBundle, trainer: DictConfig) -> int:
    full = trainer.batch_size == "full"
    batch_size = len(data.train) if full else distributed.global_batch_size(trainer.batch_size)
    batches = num_batches(data.train, batch_size)
    if trainer.max_batches_per_epoch is not None:
        batches = min(batches, trainer.max_batches_per_epoch)
    if trainer.get("overfit_batches"):  # debug=overfit: the same few batches every epoch
        batches = min(batches, trainer.overfit_batches)
    return batches


def num_batches(split: Any, batch_size: int) -> int:
    """The split's batches of `batch_size`; a token split too short for one is refused."""
    count = split.num_batches(batch_size)
    if isinstance(split, TokenSplit):  # a tensor split always has one: its last batch may be short
        check_token_batches(batch_size, split.num_steps, len(split), count)
    return count


def loops_for(experiment: Experiment, trainer: DictConfig) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """(train one epoch, evaluate a split) for the task; a language model looks after a hidden state."""
    task = task_of(experiment.data.spec.task)
    autocast = autocast_for(trainer.get("precision", 32), experiment.device)
    max_eval = trainer.get("max_eval_batches")  # smoke runs: a few batches of each split
    eval_batch_size = trainer.eval_batch_size
    if task.generates_text:
        # Evaluation reads a split in the training batch shape, so a carried state sees as much context;
        # a validation tail too short for one batch is refused now, not after the first epoch.
        if experiment.data.val is not None:
            num_batches(experiment.data.val, trainer.batch_size)
        eval_batch_size = trainer.batch_size
    carry_state = experiment.data.train.carries_state  # a language model's sequential batches
    loops = (
        partial(
            train_one_epoch,
            task=task,
            carry_state=carry_state,
            autocast=autocast,
            accumulate=trainer.get("accumulate_grad_batches", 1),
            scaler=experiment.scaler,
        ),
        partial(evaluate, task=task, batch_size=eval_batch_size, autocast=autocast, max_batches=max_eval),
    )
    # trainer.devices > 1: each rank trains and evaluates on its rows, the metrics are every rank's
    return distributed.loops(task, *loops) if distributed.joined() else loops


def autocast_for(
    precision: int | str, device: torch.device
) -> Callable[[], contextlib.AbstractContextManager]:
    """What the loops wrap each forward pass and loss in: bf16 or fp16 autocast, nothing for 32."""
    if str(precision) == "32":
        return contextlib.nullcontext
    if str(precision) == "fp16":  # CUDA only (grad_scaler refused the rest)
        return partial(torch.autocast, device.type, dtype=torch.float16)
    if device.type == "cuda":
        check_bf16(torch.cuda.get_device_name(device), torch.cuda.is_bf16_supported())
    return partial(torch.autocast, device.type, dtype=torch.bfloat16)


def describe(experiment: Experiment, cfg: DictConfig) -> dict[str, Any]:
    spec = experiment.data.spec
    num_parameters = sum(p.numel() for p in experiment.model.parameters())
    model_name = type(experiment.model).__name__
    sizes = " / ".join(f"{name} {size:,}" for name, size in spec.sizes.items())
    outputs = {
        "classification": f"{spec.num_outputs} classes",
        "regression": f"{spec.num_outputs} target" + ("s" if spec.num_outputs > 1 else ""),
    }.get(spec.task, f"vocabulary of {spec.num_outputs} tokens")
    log.info("data: %s, %s, input %s, %s; %s", spec.name, spec.task, tuple(spec.input_shape), outputs, sizes)
    log.info("model: %s, %s parameters", model_name, f"{num_parameters:,}")
    optimizer = experiment.optimizer
    log.info(
        "optimizer: %s, lr %g; loss: %s; device: %s",
        type(optimizer).__name__,
        optimizer.param_groups[0]["lr"],
        resolve_loss_name(cfg.loss.name, spec),
        experiment.device,
    )
    return {
        "data": spec.to_dict(),
        "model": model_name,
        "num_parameters": num_parameters,
        "loss": resolve_loss_name(cfg.loss.name, spec),
        "optimizer": type(optimizer).__name__,
        "device": str(experiment.device),
    }
