"""Check a composed config before anything is built: every problem named by key, value and the fix.

Every run's config passes it once, through config/job.py: before the run folder exists where the
config is known then (preflight, a resume), else at the run's start, so a bad value never reaches the
training loop. Imports nothing heavy: it runs on every command.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from nnexp.config import model_checks as model
from nnexp.config.custom import checked_by_nnexp, is_custom
from nnexp.config.data_checks import DATA_SWITCH_RULES, check_named_splits, has_val_split
from nnexp.config.interpolations import check_interpolations
from nnexp.config.lr_find import check_lr_find
from nnexp.config.model_checks import INITS, check_model_lists
from nnexp.config.output_checks import check_outputs
from nnexp.config.synthetic_checks import SYNTHETIC_RULES, check_synthetic
from nnexp.config.toy2d_checks import check_toy2d, toy2d_keys
from nnexp.config.trust import check_targets
from nnexp.errors import ConfigError

LOSSES = ("auto", "cross_entropy", "mse", "l1", "mse_onehot")
MODES = ("min", "max")
TOKENS = ("char", "word")
PARTITIONS = ("sequential", "random")
PRECISIONS = ("32", "bf16", "fp16")  # trainer.precision; 32 may arrive as the number 32


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _positive_list(value: Any) -> bool:
    return (
        isinstance(value, (list, ListConfig)) and len(value) > 0 and all(_whole(v) and v >= 1 for v in value)
    )


def _size_or_sizes(least: int) -> Callable[[Any], bool]:
    """A whole number >= least, or a non-empty list of them (one per conv block)."""

    def ok(value: Any) -> bool:
        values = value if isinstance(value, (list, ListConfig)) else [value]
        return len(values) > 0 and all(_whole(v) and v >= least for v in values)

    return ok


@dataclass(frozen=True)
class Rule:
    key: str
    ok: Callable[[Any], bool]
    allowed: str
    example: str


def _rule(key: str, ok: Callable[[Any], bool], allowed: str, example: Any) -> Rule:
    return Rule(key, ok, allowed, f"{key}={example}")


def _one_of(choices: tuple[str, ...]) -> Callable[[Any], bool]:
    return lambda value: value in choices


MAX_THREADS = 4 * (os.cpu_count() or 1)

RULES = [
    _rule("seed", lambda v: _whole(v) and 0 <= v < 2**32, "a whole number from 0 to 4294967295", 0),
    _rule(
        "objective",  # what a sweeper optimises: a final metric, e.g. val_accuracy
        lambda v: v is None or (isinstance(v, str) and bool(re.fullmatch(r"(train|val|test)_[a-z_]+", v))),
        "null or a final metric column such as val_accuracy, val_loss or test_mse",
        "val_accuracy",
    ),
    _rule("trainer.epochs", lambda v: _whole(v) and v >= 1, "a whole number >= 1", 10),
    _rule(
        "trainer.batch_size",
        lambda v: v == "full" or (_whole(v) and v >= 1),
        "a whole number >= 1, or `full` for full-batch gradient descent",
        64,
    ),
    _rule("trainer.eval_every", lambda v: _whole(v) and v >= 1, "a whole number >= 1", 1),
    _rule("trainer.eval_batch_size", lambda v: _whole(v) and v >= 1, "a whole number >= 1", 4096),
    _rule(
        "trainer.max_batches_per_epoch",
        lambda v: v is None or (_whole(v) and v >= 1),
        "null or a whole number >= 1",
        5,
    ),
    _rule(
        "trainer.max_eval_batches",
        lambda v: v is None or (_whole(v) and v >= 1),
        "null or a whole number >= 1",
        3,
    ),
    _rule("trainer.checkpoint_every_s", lambda v: _number(v) and v >= 0, "seconds >= 0 (0: every epoch)", 30),
    _rule("trainer.stuck_epochs", lambda v: _whole(v) and v >= 0, "a whole number >= 0", 5),
    _rule("trainer.stuck_tolerance", lambda v: _number(v) and v >= 0, "a finite number >= 0", 1e-4),
    _rule("trainer.stop_when_stuck", lambda v: isinstance(v, bool), "true or false", "true"),
    _rule("trainer.shuffle", lambda v: isinstance(v, bool), "true or false", "false"),
    _rule("trainer.eval_train", lambda v: isinstance(v, bool), "true or false", "true"),
    _rule(
        "trainer.clip_grad_norm",
        lambda v: v is None or (_number(v) and v > 0),
        "null or a finite number > 0",
        1.0,
    ),
    _rule("diagnostics.enabled", lambda v: isinstance(v, bool), "true or false", "false"),
    _rule("diagnostics.probe_rows", lambda v: _whole(v) and v >= 1, "a whole number >= 1", 128),
    _rule("diagnostics.probe_every", lambda v: v == "auto" or (_whole(v) and v >= 1), "auto or N >= 1", 5),
    _rule("diagnostics.after_epochs", lambda v: _whole(v) and v >= 1, "a whole number >= 1", 5),
    _rule("diagnostics.after_steps", lambda v: _whole(v) and v >= 0, "a whole number >= 0", 100),
    _rule("diagnostics.dead_relu_share", lambda v: _number(v) and 0 < v <= 1, "a number in (0, 1]", 0.5),
    _rule("diagnostics.gradient_ratio", lambda v: _number(v) and v > 1, "a finite number > 1", 1000),
    # Speed: each off by default (docs/speed-settings.md).
    _rule("trainer.precision", lambda v: str(v) in PRECISIONS, "32, bf16 or fp16 (CUDA)", "bf16"),
    # Trainer habits (docs/trainer.md)
    _rule("trainer.test_on", _one_of(("last", "best")), "last or best", "best"),
    _rule("trainer.accumulate_grad_batches", lambda v: _whole(v) and v >= 1, "a whole number >= 1", 4),
    _rule("trainer.overfit_batches", lambda v: v is None or (_whole(v) and v >= 1), "null or N >= 1", 2),
    _rule("trainer.profile_steps", lambda v: v is None or (_whole(v) and v >= 1), "null or N >= 1", 5),
    _rule("trainer.compile", lambda v: isinstance(v, bool), "true or false", "true"),
    _rule(
        "trainer.threads",  # far past the cores only slows a run, and 100,000 crashes torch's thread pool
        lambda v: v is None or v == "auto" or (_whole(v) and 1 <= v <= MAX_THREADS),
        f"null, auto or a whole number from 1 to {MAX_THREADS} (4 per CPU core here)",
        1,
    ),
    _rule("optim.lr", lambda v: _number(v) and v > 0, "a finite number > 0", 0.01),
    _rule("optim.momentum", lambda v: _number(v) and 0 <= v < 1, "a number in [0, 1)", 0.9),
    _rule("optim.dampening", lambda v: _number(v) and 0 <= v <= 1, "a number in [0, 1]", 0.0),
    _rule("optim.weight_decay", lambda v: _number(v) and v >= 0, "a finite number >= 0", 0.0),
    _rule("optim.eps", lambda v: _number(v) and v > 0, "a finite number > 0", 1e-8),
    _rule("optim.alpha", lambda v: _number(v) and 0 <= v < 1, "a number in [0, 1)", 0.99),
    _rule("optim.lr_decay", lambda v: _number(v) and v >= 0, "a finite number >= 0", 0.0),
    _rule(
        "optim.initial_accumulator_value",
        lambda v: _number(v) and v >= 0,
        "a finite number >= 0",
        0.0,
    ),
    _rule(
        "optim.betas",
        lambda v: (
            isinstance(v, (list, tuple, ListConfig))
            and len(v) == 2
            and all(_number(b) and 0 <= b < 1 for b in v)
        ),
        "two numbers in [0, 1)",
        "[0.9,0.999]",
    ),
    _rule("optim.nesterov", lambda v: isinstance(v, bool), "true or false", "true"),
    _rule("optim.amsgrad", lambda v: isinstance(v, bool), "true or false", "true"),
    _rule("optim.centered", lambda v: isinstance(v, bool), "true or false", "true"),
    _rule(
        "model.hidden",
        lambda v: isinstance(v, (list, ListConfig)) and all(_whole(h) and h >= 1 for h in v),
        "a list of whole numbers >= 1",
        "[256,128]",
    ),
    _rule("model.activation", *model.ACTIVATION, "relu"),
    _rule("model.output_activation", *model.OUTPUT_ACTIVATION, "[relu,softmax]"),
    _rule("model.dropout", lambda v: _number(v) and 0 <= v < 1, "a probability in [0, 1)", 0.2),
    _rule("model.init", _one_of(INITS), "one of " + ", ".join(INITS), "xavier"),
    _rule("model.init_std", lambda v: _number(v) and v >= 0, "a finite number >= 0", 0.01),
    _rule("model.init_bias", *model.INIT_BIAS_RULE, "keep"),
    _rule("loss.name", _one_of(LOSSES), "one of " + ", ".join(LOSSES), "cross_entropy"),
    _rule("scheduler.step_size", lambda v: _whole(v) and v >= 1, "a whole number >= 1", 10),
    _rule("scheduler.gamma", lambda v: _number(v) and v > 0, "a finite number > 0", 0.1),
    _rule("scheduler.T_max", lambda v: _whole(v) and v >= 1, "a whole number >= 1", 20),
    _rule("scheduler.eta_min", lambda v: _number(v) and v >= 0, "a finite number >= 0", 0.0),
    _rule("scheduler.factor", lambda v: _number(v) and 0 < v < 1, "a number in (0, 1)", 0.1),
    _rule("scheduler.patience", lambda v: _whole(v) and v >= 0, "a whole number >= 0", 5),
    _rule("scheduler.mode", _one_of(MODES), "min or max", "min"),
    _rule(
        "regularization.l2.weight_decay",
        lambda v: _number(v) and v >= 0,
        "a finite number >= 0",
        1e-4,
    ),
    _rule("regularization.l1.strength", lambda v: _number(v) and v >= 0, "a number >= 0", 1e-5),
    _rule("regularization.dropout.p", lambda v: _number(v) and 0 <= v < 1, "a probability in [0, 1)", 0.5),
    _rule(
        "regularization.early_stopping.patience",
        lambda v: _whole(v) and v >= 0,
        "a whole number >= 0",
        5,
    ),
    _rule("regularization.early_stopping.mode", _one_of(MODES), "min or max", "min"),
    _rule(
        "regularization.early_stopping.min_delta",
        lambda v: _number(v) and v >= 0,
        "a finite number >= 0",
        0.0,
    ),
    _rule(
        "device.type",
        lambda v: isinstance(v, str) and re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", v) is not None,
        "auto, cpu, mps, cuda or cuda:N",
        "cpu",
    ),
    _rule("data.val_fraction", lambda v: _number(v) and 0 <= v < 1, "a fraction in [0, 1)", 0.1),
    _rule("data.scale", lambda v: isinstance(v, bool), "true or false", "true"),
    _rule("data.normalize_features", lambda v: isinstance(v, bool), "true or false", "true"),
    _rule("data.test_fraction", lambda v: _number(v) and 0 < v < 1, "a fraction in (0, 1)", 0.2),
    *(_rule(*rule) for rule in DATA_SWITCH_RULES),  # data.test_size, features, target, scale_on, ...
    *(_rule(*rule) for rule in SYNTHETIC_RULES),  # data=synthetic: data.shape, low, high, target_rule, ...
    # Image data (data=mnist, data=fashion_mnist) and image models (model=cnn, lenet, resnet).
    _rule("data.root", lambda v: isinstance(v, str) and v != "", "a folder path", "data"),
    _rule("data.download", lambda v: isinstance(v, bool), "true or false", "false"),
    _rule("data.normalize", lambda v: isinstance(v, bool), "true or false", "true"),
    _rule("data.synthetic", lambda v: isinstance(v, bool), "true or false", "true"),
    _rule(
        "data.val_size",
        lambda v: (_whole(v) and v >= 0) or (_number(v) and 0 < v < 1),
        "a whole number of images >= 0 or a fraction in (0, 1)",
        5000,
    ),
    _rule(
        "data.synthetic_sizes",
        lambda v: isinstance(v, (list, ListConfig)) and len(v) == 2 and all(_whole(n) and n >= 2 for n in v),
        "two whole numbers >= 2 (train and test images)",
        "[600,100]",
    ),
    _rule("model.channels", _positive_list, "a non-empty list of whole numbers >= 1", "[8,16]"),
    _rule("model.widths", _positive_list, "a non-empty list of whole numbers >= 1", "[16,32,64]"),
    _rule("model.kernel_size", _size_or_sizes(1), "a whole number >= 1, or a list of them", 3),
    _rule("model.stride", _size_or_sizes(1), "a whole number >= 1, or a list of them", 1),
    _rule("model.padding", _size_or_sizes(0), "a whole number >= 0, or a list of them", 1),
    _rule("model.pool", *model.POOL, "max"),
    _rule("model.pool_size", _size_or_sizes(1), "a whole number >= 1, or a list of them", 2),
    _rule("model.batchnorm", lambda v: isinstance(v, bool), "true or false", "true"),
    _rule("model.blocks_per_stage", lambda v: _whole(v) and v >= 1, "a whole number >= 1", 2),
    _rule(
        "regularization.augment.degrees", lambda v: _number(v) and 0 <= v <= 180, "degrees in [0, 180]", 10
    ),
    _rule(
        "regularization.augment.translate", lambda v: _number(v) and 0 <= v < 1, "a fraction in [0, 1)", 0.1
    ),
    _rule(
        "regularization.augment.scale",
        lambda v: (
            isinstance(v, (list, ListConfig))
            and len(v) == 2
            and all(_number(z) and z > 0 for z in v)
            and v[0] <= v[1]
        ),
        "two numbers > 0, smallest first",
        "[0.9,1.1]",
    ),
    _rule(
        "regularization.augment.horizontal_flip",
        lambda v: _number(v) and 0 <= v <= 1,
        "a probability in [0, 1]",
        0.5,
    ),
    # Text data (data=time_machine), recurrent language models (model=rnn, gru, lstm), generation.
    _rule("data.path", lambda v: v is None or (isinstance(v, str) and v != ""), "a file path", "my.txt"),
    _rule("data.url", lambda v: isinstance(v, str) and v != "", "a URL", "http://example.com/book.txt"),
    _rule(
        "data.sha1",
        lambda v: v is None or (isinstance(v, str) and re.fullmatch(r"[0-9a-fA-F]{40}", v) is not None),
        "null or 40 hexadecimal digits",
        "null",
    ),
    _rule("data.token", _one_of(TOKENS), "char or word", "char"),
    _rule("data.replace", lambda v: v is None or _regex(v), "null or a regular expression", "'[^A-Za-z]+'"),
    _rule("data.lowercase", lambda v: isinstance(v, bool), "true or false", "true"),
    _rule("data.min_freq", lambda v: _whole(v) and v >= 0, "a whole number >= 0", 2),
    _rule(
        "data.reserved_tokens",
        lambda v: isinstance(v, (list, ListConfig)) and all(isinstance(t, str) and t for t in v),
        "a list of tokens",
        "[<bos>,<eos>]",
    ),
    _rule(
        "data.max_tokens", lambda v: v is None or (_whole(v) and v >= 2), "null or a whole number >= 2", 10000
    ),
    _rule("data.num_steps", lambda v: _whole(v) and v >= 1, "a whole number >= 1", 35),
    _rule("data.partition", _one_of(PARTITIONS), "sequential or random", "sequential"),
    _rule("model.hidden_size", lambda v: _whole(v) and v >= 1, "a whole number >= 1", 256),
    _rule("model.num_layers", lambda v: _whole(v) and v >= 1, "a whole number >= 1", 2),
    _rule(
        "model.embedding_dim", lambda v: v is None or (_whole(v) and v >= 1), "null (one-hot) or a size", 32
    ),
    _rule("generation.prefix", lambda v: isinstance(v, str), "a string", "'time traveller'"),
    _rule(
        "generation.num_tokens", lambda v: _whole(v) and 0 <= v <= 100_000, "a whole number up to 100000", 50
    ),
    _rule(
        "generation.every", lambda v: v is None or (_whole(v) and v >= 1), "null or a whole number >= 1", 10
    ),
    _rule("generation.temperature", lambda v: _number(v) and v >= 0, "0 (greedy) or a number > 0", 0.8),
]

_ABSENT = object()


def check_config(cfg: DictConfig) -> None:
    """Raise ConfigError naming the first problem in `cfg`; return quietly when it is sound."""
    _check_sections(cfg)
    check_targets(OmegaConf.to_container(cfg, resolve=False))  # nnexp/config/trust.py: exact names only
    check_interpolations(cfg)  # nnexp/config/interpolations.py: before anything reads a value
    _check_nothing_missing(cfg)
    check_toy2d(cfg)  # data=toy2d's data.shape is a name, not data=synthetic's list of sizes
    own_rules = toy2d_keys(cfg)
    for rule in RULES:
        value = OmegaConf.select(cfg, rule.key, default=_ABSENT)
        if value is _ABSENT or not checked_by_nnexp(cfg, rule.key):  # model=custom: keys are the user's
            continue
        if rule.key in own_rules:
            continue
        if not rule.ok(value):
            raise ConfigError(
                f"{rule.key}={_show(value)} is not allowed: use {rule.allowed} (e.g. {rule.example})",
                key=rule.key,
            )
    if not is_custom(cfg, "model"):
        check_model_lists(cfg)
    _check_combinations(cfg)
    check_outputs(cfg)  # outputs.*, trainer.log_every_n_steps and trainer.log_every_n_epochs
    check_lr_find(cfg)  # +lr_find=exponential's settings, before the data or the model is built


REQUIRED_SECTIONS = ("data", "model", "loss", "optim", "trainer", "device")


def _check_sections(cfg: DictConfig) -> None:
    """`nnexp ~optim` composes; the run would then fail half-way, far from the cause."""
    for name in REQUIRED_SECTIONS:
        if not isinstance(cfg.get(name), DictConfig):
            raise ConfigError(
                f"the config has no {name} (was it removed with ~{name}?): every run needs one; "
                f"pick it with {name}=OPTION (nnexp --help lists the options)",
                key=name,
            )


def _check_nothing_missing(cfg: DictConfig) -> None:
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        keys = ", ".join(missing)
        raise ConfigError(
            f"{keys} {'is' if len(missing) == 1 else 'are'} required: "
            f"set {'it' if len(missing) == 1 else 'them'} on the command line, e.g. {missing[0]}=..."
        )


def _regex(value: Any) -> bool:
    try:
        re.compile(value)
    except (re.error, TypeError):
        return False
    return True


def _check_text_and_model(cfg: DictConfig) -> None:
    """Token streams need a recurrent model (and whole batches), and recurrent models need tokens."""
    text = OmegaConf.select(cfg, "data.num_steps") is not None
    recurrent = str(OmegaConf.select(cfg, "model._target_", default="")).startswith("nnexp.models.recurrent.")
    if text and not recurrent:
        raise ConfigError(
            f"data=time_machine is token data and {_model_name(cfg)} is not a language model: "
            f"use model=rnn, model=gru or model=lstm"
        )
    if recurrent and not text:
        raise ConfigError(
            f"{_model_name(cfg)} is a language model and needs token data: use data=time_machine"
        )
    if text and OmegaConf.select(cfg, "trainer.batch_size") == "full":
        raise ConfigError(
            "trainer.batch_size=full does not apply to a token stream: use e.g. trainer.batch_size=32"
        )


def _check_combinations(cfg: DictConfig) -> None:
    _check_text_and_model(cfg)
    check_named_splits(cfg)
    check_synthetic(cfg)
    optim = cfg.get("optim", {})
    if optim.get("nesterov") and (optim.get("momentum", 0) <= 0 or optim.get("dampening", 0) != 0):
        raise ConfigError(
            "optim.nesterov=true needs momentum > 0 and dampening 0: "
            "add optim.momentum=0.9 or set optim.nesterov=false"
        )
    regularization = cfg.get("regularization") or {}
    if "dropout" in regularization and "dropout" not in cfg.model:
        raise ConfigError(
            f"regularization=dropout needs a model with hidden layers, and "
            f"{_model_name(cfg)} has none: choose e.g. model=mlp"
        )
    has_val = has_val_split(cfg)  # data.folds makes one fold the validation split
    monitored = {
        "regularization.early_stopping.monitor": OmegaConf.select(
            cfg, "regularization.early_stopping.monitor"
        ),
    }
    for key, monitor in monitored.items():
        if monitor is None:
            continue
        if not isinstance(monitor, str) or not re.fullmatch(r"(train|val)_\w+", monitor):
            raise ConfigError(
                f"{key}={_show(monitor)} is not allowed: use a metrics column such as "
                f"val_loss or val_accuracy"
            )
        if monitor.startswith("val_") and not has_val:
            raise ConfigError(
                f"{key}={monitor} needs a validation split, and data.val_fraction is 0: "
                f"set data.val_fraction=0.1 or {key}=train_loss"
            )


def _model_name(cfg: DictConfig) -> str:
    target = str(cfg.model.get("_target_", "this model"))
    return "model=" + target.rsplit(".", 1)[-1].lower()


def _show(value: Any) -> str:
    if isinstance(value, ListConfig) and all(isinstance(v, (str, int, float)) for v in value):
        return "[" + ",".join(str(v) for v in value) + "]"  # as typed: [sigmoid,relu]
    if isinstance(value, (DictConfig, ListConfig)):
        return str(OmegaConf.to_container(value)).replace(" ", "")
    if isinstance(value, str) and _read_as_other_than_text(value):
        return f'"{value}"'  # 'trainer.threads="2"' (text), not 2 the number it looks like
    return str(value)


def _read_as_other_than_text(text: str) -> bool:
    """Whether `text` typed bare would be a number, a bool or null rather than the text it is."""
    import yaml

    try:
        return not isinstance(yaml.safe_load(text), str)
    except yaml.YAMLError:
        return False
