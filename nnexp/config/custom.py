"""model=custom and data=custom: the user's own nn.Module class and data loader, named by `_target_`.

    nnexp model=custom model._target_=mynet.Net model.hidden=128
    nnexp data=custom data._target_=mydata.load data.task=regression

The name is imported from the current folder (put on sys.path for that import only) or the installed
environment. A model gets the data's sizes (`input_shape`, `num_outputs`) when its constructor takes them,
and every other `model.*` key as a keyword argument; a loader gets its `data.*` keys but nnexp's own
(DATA_KEYS). Every mistake a user can make here (a module that does not import, a class that is not an
nn.Module, an argument the constructor does not take) is one line naming the key and the fix.
Which names may be imported at all is trust.py's rule, applied before anything here runs.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from collections.abc import Mapping
from typing import Any

from nnexp.config.machine_checks import check_model_allocated
from nnexp.config.trust import NNEXP_BUILDERS, is_trusted_target, is_user_target
from nnexp.errors import ConfigError, DataError, UserError, first_line, shown

BASE = "nnexp_custom"  # the ConfigStore node configs/*/custom.yaml start from (register_free_keys)
MODEL_KEYS = ("init", "init_std", "init_bias")  # model.* that nnexp reads itself (train/build.py)
# data.* that nnexp reads itself (data/custom.py, data/folds.py); the loader gets the rest
DATA_KEYS = ("task", "val_fraction", "test_size", "split_seed", "folds", "fold")


def is_custom_target(target: Any) -> bool:
    """The user's own code, or a torch class in place of nnexp's builders (model._target_=torch.nn.Linear):
    either is built with the arguments its signature takes, the data's sizes only where it takes them."""
    return is_user_target(target) or (
        isinstance(target, str) and target not in NNEXP_BUILDERS and is_trusted_target(target)
    )


def is_custom(cfg: Mapping[str, Any], section: str) -> bool:
    """`model` or `data` names the user's own code: its keys are the user's, not nnexp's rules'."""
    node = cfg.get(section)
    return isinstance(node, Mapping) and is_custom_target(node.get("_target_"))


def checked_by_nnexp(cfg: Mapping[str, Any], key: str) -> bool:
    """Whether nnexp's rule for `key` applies: a custom section's keys go to the user's code as they are."""
    section, _, name = key.partition(".")
    if section not in ("model", "data") or not is_custom(cfg, section):
        return True
    return name.split(".")[0] in (MODEL_KEYS if section == "model" else DATA_KEYS)


def register_free_keys() -> None:
    """The base of configs/model/custom.yaml and configs/data/custom.yaml: `_target_: ???` (the user names
    it), in a section the command line may add keys to: `model.hidden=128` with no file listing `hidden`.
    Hydra refuses a new key in a struct config unless `+` adds it, and nnexp refuses `+model.x` as a typo;
    this node's flag lifts that for its own section only. (A node in Hydra's ConfigStore: YAML has no flags.)
    """
    from hydra.core.config_store import ConfigStore
    from omegaconf import OmegaConf

    store = ConfigStore.instance()
    if f"{BASE}.yaml" not in store.repo:
        store.store(name=BASE, node=OmegaConf.create({"_target_": "???"}, flags={"struct": False}))


def locate(key: str, name: str) -> Any:
    """The object `name` (module.attribute) names, imported with the current folder on sys.path."""
    module_name, _, attribute = name.rpartition(".")
    here = os.getcwd()
    added = here not in sys.path and "" not in sys.path
    if added:
        sys.path.insert(0, here)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name and module_name.startswith(error.name):
            raise ConfigError(
                f"{key}={name}: there is no module {error.name} in {here} or the installed packages; run "
                f"nnexp from the folder that holds {error.name.split('.')[0]}.py, or pip install it",
                key=key,
            ) from None
        raise ConfigError(
            f"{key}={name}: importing {module_name} failed: {first_line(error)}", key=key
        ) from None
    except Exception as error:  # the user's module raised while it loaded: name it, without a traceback
        raise ConfigError(
            f"{key}={name}: importing {module_name} raised {type(error).__name__}: {first_line(error)}; "
            f"fix {module_name}",
            key=key,
        ) from None
    finally:
        if added:
            sys.path.remove(here)
    if not hasattr(module, attribute):
        raise ConfigError(
            f"{key}={name}: {module_name} ({getattr(module, '__file__', '?')}) has no {attribute}; "
            f"name a class or function it defines",
            key=key,
        )
    return getattr(module, attribute)


def keyword_arguments(
    section: str, target: Any, name: str, given: dict[str, Any], sizes: dict[str, Any]
) -> dict[str, Any]:
    """`given` (the section's keys) plus the `sizes` the callable accepts, checked against its signature:
    a key it does not take, or an argument it needs and is not given, is one line naming the key."""
    try:
        parameters = inspect.signature(target).parameters
    except (TypeError, ValueError):  # a builtin without a signature: hand it what it was given
        return dict(given)
    kinds = inspect.Parameter
    any_keyword = any(p.kind is kinds.VAR_KEYWORD for p in parameters.values())
    named = [n for n, p in parameters.items() if p.kind in (kinds.POSITIONAL_OR_KEYWORD, kinds.KEYWORD_ONLY)]
    arguments = {
        key: value for key, value in sizes.items() if (key in named or any_keyword) and key not in given
    }
    arguments.update(given)
    for key, value in given.items():
        if key not in named and not any_keyword:
            takes = ", ".join(named) or "no arguments"
            raise ConfigError(
                f"{section}.{key}={value}: {name} takes no argument {key} (it takes {takes}); drop "
                f"{section}.{key}, or add {key} to its arguments",
                key=f"{section}.{key}",
            )
    for key, parameter in parameters.items():
        needed = parameter.default is kinds.empty and parameter.kind not in (
            kinds.VAR_KEYWORD,
            kinds.VAR_POSITIONAL,
        )
        if needed and key not in arguments:
            raise ConfigError(
                f"{name} needs the argument {key}: give it as {section}.{key}=VALUE (or give it a default)",
                key=f"{section}.{key}",
            )
    return arguments


def build_user_model(options: dict[str, Any], input_shape: tuple[int, ...], num_outputs: int) -> Any:
    """The user's nn.Module, built with the data's sizes where it takes them and `options` as keywords."""
    from torch import nn

    name = options.pop("_target_")
    model_class = locate("model._target_", name)
    if not (isinstance(model_class, type) and issubclass(model_class, nn.Module)):
        raise ConfigError(
            f"model._target_={name} is a {type(model_class).__name__}, not an nn.Module class: name your "
            f"model's class (class Net(nn.Module) in {name.rpartition('.')[0]}.py: model._target_=...Net)",
            key="model._target_",
        )
    sizes = {"input_shape": input_shape, "num_outputs": num_outputs}
    # A class with no __init__ of its own has nn.Module's (*args, **kwargs), which takes nothing at all.
    takes = model_class if model_class.__init__ is not nn.Module.__init__ else lambda: None
    arguments = keyword_arguments("model", takes, name, options, sizes)
    try:
        model = model_class(**arguments)
    except UserError:
        raise
    except Exception as error:  # the user's constructor refused its arguments: name them, not a traceback
        check_model_allocated(error)  # too big for this machine: said as such
        given = ", ".join(f"model.{key}={shown(value, 40)}" for key, value in options.items())
        raise ConfigError(
            f"model._target_={name}: building it{f' with {given}' if given else ''} raised "
            f"{type(error).__name__}: {first_line(error)}; fix those values or its __init__",
            key="model._target_",
        ) from None
    if next(iter(model.parameters()), None) is None:
        raise ConfigError(
            f"model._target_={name} has no parameters to train: give it layers with weights (nn.Linear, "
            f"...) as attributes in __init__ (layers in a plain list are not registered: use nn.ModuleList)",
            key="model._target_",
        )
    return model


def check_user_outputs(model: Any, name: str, examples: Any, task_name: str, num_outputs: int) -> None:
    """One forward pass on a few training `examples` (no gradients, eval mode): the model must give one
    row of `num_outputs` per example, or the run would fail later, in the loss, far from the cause."""
    import torch

    from nnexp.data.tasks import task_of

    task = task_of(task_name)
    if task.generates_text:  # a language model's (inputs, state): not what data=custom gives
        return
    training = model.training
    model.eval()
    try:
        with torch.no_grad():
            outputs, _ = task.forward(model, examples)
    except UserError:
        raise
    except Exception as error:
        check_model_allocated(error)
        raise ConfigError(
            f"model._target_={name}: its forward on {len(examples)} training examples, shape "
            f"{tuple(examples.shape)}, raised {type(error).__name__}: {first_line(error)}; make it take "
            f"inputs of shape (N, {', '.join(str(size) for size in examples.shape[1:])})",
            key="model._target_",
        ) from None
    finally:
        model.train(training)
    has = (
        f"{num_outputs} classes"
        if task.predicts_classes
        else f"{num_outputs} target" + "s" * (num_outputs > 1)
    )
    fix = f"give it num_outputs (an argument nnexp fills in) and end it with {num_outputs} outputs"
    if not isinstance(outputs, torch.Tensor):
        raise ConfigError(
            f"model._target_={name}: its forward returns a {type(outputs).__name__}, and the data has {has}: "
            f"return one tensor of shape (N, {num_outputs})",
            key="model._target_",
        )
    if tuple(outputs.shape) == (len(examples), num_outputs):
        return
    if outputs.ndim == 2 and len(outputs) == len(examples):
        said = f"gives {outputs.shape[1]} outputs per example"
    else:
        wanted = (len(examples), num_outputs)
        said = f"gives outputs of shape {tuple(outputs.shape)} for {len(examples)} examples, not {wanted}"
    raise ConfigError(f"model._target_={name} {said}, and the data has {has}: {fix}", key="model._target_")


def load_user_data(options: dict[str, Any]) -> Any:
    """The user's loader called with its `data.*` keys; its splits made a DataBundle (data/custom.py)."""
    from nnexp.data.custom import bundle_from_splits

    name = options.pop("_target_")
    ours = {key: options.pop(key) for key in DATA_KEYS if key in options}
    loader = locate("data._target_", name)
    if not callable(loader):
        raise ConfigError(
            f"data._target_={name} is a {type(loader).__name__}, not a function: name a function that "
            f"returns the splits (def load(): return {{'train': (x, y), 'test': (x, y)}})",
            key="data._target_",
        )
    arguments = keyword_arguments("data", loader, name, options, {})
    try:
        splits = loader(**arguments)
    except UserError:
        raise
    except Exception as error:  # the user's loader failed: its own line, not a traceback
        raise DataError(
            f"data._target_={name} raised {type(error).__name__}: {first_line(error)}; fix {name} "
            f"(or the data.* values it was given)"
        ) from None
    return bundle_from_splits(splits, name, **ours)


__all__ = [
    "DATA_KEYS",
    "MODEL_KEYS",
    "build_user_model",
    "check_user_outputs",
    "checked_by_nnexp",
    "is_custom",
    "is_custom_target",
    "load_user_data",
    "locate",
    "register_free_keys",
]
