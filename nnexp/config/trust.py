"""What a config may make nnexp run: nnexp's own builders and torch's optimiser, scheduler and layer classes.

A config's `_target_` is code Hydra imports and calls, and an interpolation's resolver is code OmegaConf
calls. On the command line the user names them; in a run folder somebody else may have. Run folders are
shared (mailed, copied between labs), so every reader of one (resume, sweep resume, nnexp-predict,
nnexp-generate) passes what it read through `check_untrusted` before anything is resolved, instantiated
or unpickled, and the command line's configs pass through the same rule (`check_targets`).

Trust is decided by exact name, never by prefix: Hydra resolves `torch.nn.functional.torch.load` by
walking attributes, so a prefix such as "torch.nn." admits `torch.load` itself.

The user's own code (`model=custom model._target_=mynet.Net`, `data=custom data._target_=mydata.load`) is
trusted where the user names it: on this command's line, at `model._target_` or `data._target_` only, and
only a name outside torch, nnexp and the standard library (`is_user_target`). Read back from a run folder
the same name is refused unless this command names it again (`nnexp resume=RUN trust=[mynet.Net]`,
`nnexp-predict RUN INPUT --trust mynet.Net`): a folder never makes nnexp import a module by itself saying so.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Collection, Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from nnexp.errors import ConfigError, shown

# Every `_target_` in configs/ and experiments/ (tests/test_trust.py keeps this list and them in step).
NNEXP_BUILDERS = frozenset(
    {
        "nnexp.data.digits.load_digits",
        "nnexp.data.images.load_fashion_mnist",
        "nnexp.data.images.load_mnist",
        "nnexp.data.synthetic.load_synthetic",
        "nnexp.data.tabular.load_csv",
        "nnexp.data.text.load_text",
        "nnexp.data.toy2d.load_toy2d",
        "nnexp.models.cnn.CNN",
        "nnexp.models.linear.Linear",
        "nnexp.models.mlp.MLP",
        "nnexp.models.recurrent.GRU",
        "nnexp.models.recurrent.LSTM",
        "nnexp.models.recurrent.RNN",
        "nnexp.models.resnet.ResNet",
        "nnexp.models.sequential.Sequential",
    }
)

# torch classes by module: a target is `<module>.<Class>` exactly, and the class must be a subclass of
# the base named here (checked by looking it up, so `torch.optim.Optimizer.__init__` and the like fail).
_TORCH_FAMILIES = {
    "torch.optim": "optimizer",
    "torch.optim.lr_scheduler": "scheduler",
    "torch.nn": "module",
}
_CLASS_NAME = re.compile(r"[A-Z][A-Za-z0-9]*\Z")

# Resolvers a saved config may call: reading an environment variable (the data folder's default is
# ${oc.env:NNEXP_DATA_ROOT,data}). Others make folders (nnexp_new_dir) or turn a string into config nodes
# that no check has seen (oc.decode, oc.create).
SAFE_RESOLVERS = frozenset({"oc.env"})
_RESOLVER_CALL = re.compile(r"\$\{\s*([^\s:}]+)\s*:")

TRUSTED = "one of nnexp's own builders or a torch.optim / torch.optim.lr_scheduler / torch.nn class"

# Where a config may name the user's own code: the model's class and the data's loader, nothing deeper.
USER_TARGET_KEYS = ("model._target_", "data._target_")
# Names that are never the user's own code: what nnexp trusts only by exact name, and what runs anything.
_NOT_USER_CODE = frozenset({"torch", "nnexp", "hydra", "omegaconf", "__main__", *sys.stdlib_module_names})
_USER_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+\Z")


def is_trusted_target(target: Any) -> bool:
    """True for a builder nnexp ships or a torch optimiser, scheduler or layer class named exactly."""
    if not isinstance(target, str):
        return False
    if target in NNEXP_BUILDERS:
        return True
    module, _, name = target.rpartition(".")
    if module not in _TORCH_FAMILIES or not _CLASS_NAME.match(name):
        return False
    return _is_torch_class(module, name)


def is_user_target(target: Any) -> bool:
    """A dotted name that can only be the user's own code (mynet.Net, mylab.data.load): not torch's, not
    nnexp's, not the standard library's (builtins.eval, os.system), and no dunder (`__init__`) in it."""
    return (
        isinstance(target, str)
        and _USER_NAME.match(target) is not None
        and target.split(".", 1)[0] not in _NOT_USER_CODE
        and not any(part.startswith("__") for part in target.split("."))
    )


def user_targets(node: Any) -> set[str]:
    """The user's own targets a config names at `model._target_` and `data._target_`."""
    found = set()
    for key in USER_TARGET_KEYS:
        section = node.get(key.split(".")[0]) if isinstance(node, Mapping) else None
        target = section.get("_target_") if isinstance(section, Mapping) else None
        if is_user_target(target):
            found.add(target)
    return found


def _is_torch_class(module: str, name: str) -> bool:
    import importlib

    import torch

    found = getattr(importlib.import_module(module), name, None)
    if not isinstance(found, type):
        return False
    family = _TORCH_FAMILIES[module]
    if family == "optimizer":
        return issubclass(found, torch.optim.Optimizer)
    if family == "scheduler":
        scheduler = torch.optim.lr_scheduler
        return issubclass(found, (scheduler.LRScheduler, scheduler.ReduceLROnPlateau))
    return issubclass(found, torch.nn.Module)


def untrusted_parts(node: Any, path: str = "", trusted: Collection[str] = ()) -> Iterator[tuple[str, str]]:
    """(key path, what is wrong) for each `_target_` or resolver call in a plain config tree that nnexp
    would not run. `node` is unresolved: dicts, lists and scalars, as OmegaConf.to_container(resolve=False)
    or torch.load give them. `trusted`: the user's own targets this command names (see is_user_target),
    allowed at `model._target_` and `data._target_` only."""
    if isinstance(node, Mapping):
        for key, child in node.items():
            where = f"{path}.{key}" if path else str(key)
            if key == "_target_" and not is_trusted_target(child):
                if where in USER_TARGET_KEYS and is_user_target(child):
                    if child not in trusted:
                        yield where, f"{where}={shown(child)} is your own code, not one of nnexp's builders"
                else:
                    yield where, f"{where}={shown(child)} is not {TRUSTED}"
            else:
                yield from untrusted_parts(child, where, trusted)
    elif isinstance(node, (list, tuple)):
        for index, child in enumerate(node):
            yield from untrusted_parts(child, f"{path}[{index}]", trusted)
    elif isinstance(node, str):
        for resolver in unsafe_resolvers(node):
            yield path, f"{path}={shown(node)} calls the resolver {resolver}, which a saved config may not"


def unsafe_resolvers(text: str) -> list[str]:
    """The resolvers an interpolation in `text` calls that a saved config may not (nested ones too)."""
    return [name for name in _RESOLVER_CALL.findall(text) if name not in SAFE_RESOLVERS]


def check_untrusted(
    node: Any,
    source: str,
    trusted: Collection[str] = (),
    how_to_trust: Callable[[str], str] = lambda name: f"name it on your command line: trust=[{name}]",
) -> None:
    """Refuse, in one line naming `source` and the key, a saved config that would make nnexp run code.

    Called on what was read from a run or sweep folder before anything in it is resolved or built.
    `trusted`: the user's own targets this command names; a folder naming another is refused with
    `how_to_trust(name)`, the command that names it.
    """
    for key, problem in untrusted_parts(node, trusted=trusted):
        name = _lookup(node, key) if key in USER_TARGET_KEYS else None
        if is_user_target(name):
            raise UntrustedConfig(
                f"{source}: {problem}, and nnexp imports code a run folder names only when you name it too; "
                f"if you trust {name}, {how_to_trust(name)} (refusing it: nothing was loaded or run)"
            )
        raise UntrustedConfig(
            f"{source}: {problem}; a run folder holds data, and nnexp never runs code named in one "
            f"(refusing it: nothing was loaded or run)"
        )


def check_targets(node: Any) -> None:
    """The command line's rule: every `_target_` in the composed config is trusted by exact name, but for
    the user's own model class and data loader, which the user named (model=custom, data=custom)."""
    for key, _problem in untrusted_parts(node, trusted=user_targets(node)):
        value = _lookup(node, key)
        if key.endswith("_target_") and value != "???":  # ???: model=custom's, unnamed (said as required)
            own = " (or your own, outside torch and the standard library)" if key in USER_TARGET_KEYS else ""
            raise ConfigError(
                f"{key}={shown(value)} is not allowed: a target must be {TRUSTED}{own}", key=key
            )


def _lookup(node: Any, dotted: str) -> Any:
    for part in re.findall(r"[^.\[\]]+", dotted):
        node = node[int(part)] if isinstance(node, (list, tuple)) else node[part]
    return node


def problem_in_saved_config(path: Path) -> str | None:
    """What in the saved config at `path` (a run's .hydra/config.yaml) names code, in one line; None when
    nothing does or there is no such file. For readers that only show a run (nnexp-report): they run
    nothing from it anyway, but say that resume and predict would refuse it."""
    try:
        node = yaml.load(path.read_text(encoding="utf-8"), Loader=_SAFE_LOADER) if path.is_file() else None
    except (OSError, ValueError, yaml.YAMLError):
        return None  # a damaged file is named by whoever reads it for its values
    # A model=custom or data=custom run names the user's own code: an ordinary run, listed as one (resume and
    # nnexp-predict run that code only when told to trust it by name).
    for _key, problem in untrusted_parts(node, trusted=user_targets(node)):
        return f"{path}: {problem}: nnexp will not resume it or predict with it"
    return None


_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C loader: 300 runs in a report


class UntrustedConfig(ConfigError):
    """A run or sweep folder names code for nnexp to run: refused, exit 2 (it is input, not a bug)."""


__all__ = [
    "NNEXP_BUILDERS",
    "SAFE_RESOLVERS",
    "UntrustedConfig",
    "check_targets",
    "check_untrusted",
    "is_trusted_target",
    "is_user_target",
    "problem_in_saved_config",
    "unsafe_resolvers",
    "untrusted_parts",
    "user_targets",
]
