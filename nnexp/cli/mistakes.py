"""The command line's mistakes in nnexp's words: an unknown key or option with a "did you mean", a group
given a value instead of an option's name, a key added with + that nothing reads.
"""

from __future__ import annotations

import contextlib
import difflib
import re
import sys
from collections.abc import Iterator

from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import HydraException, MissingConfigException
from omegaconf import DictConfig, OmegaConf

from nnexp.config.custom import register_free_keys
from nnexp.errors import ConfigError, first_line
from nnexp.paths import CONFIG_DIR


def refuse_values_naming_no_option(point: list[str]) -> None:
    """`lr_find=true`, `scheduler=null`: Hydra reads true, null and numbers as values, never as an option's
    name, and fails with a traceback; a group's option must be named."""
    groups = group_names()
    for override in OverridesParser.create().parse_overrides(point):
        group = override.key_or_group
        if group not in groups or override.is_delete() or override.is_sweep_override():
            continue
        value = override.value()
        if isinstance(value, list) and len(set(map(str, value))) < len(value):
            twice = next(str(item) for item in value if list(map(str, value)).count(str(item)) > 1)
            raise ConfigError(f"{group} lists {twice} twice: name each option once")
        if not isinstance(value, (str, list, dict)):
            value = override.input_line.split("=", 1)[1]
            raise ConfigError(f"{group}={value} does not name an option of {group}: {how_to_choose(group)}")


def how_to_choose(group: str) -> str:
    """`use +lr_find=exponential`, or `choose one of ...`; with a + for a group the defaults do not list."""
    options = options_of(group)
    plus = "" if group in default_groups() else "+"
    if not options:
        return f"name one of its options, as {plus}{group}=OPTION"
    if len(options) == 1:
        return f"use {plus}{group}={options[0]}"
    return f"choose one of {', '.join(options)} (e.g. {plus}{group}={options[0]})"


def options_of(group: str) -> list[str]:
    """The group's options; those in a subfolder are named with it (experiment=lectures/fish_unshuffled)."""
    folder = CONFIG_DIR / group
    return sorted(path.relative_to(folder).with_suffix("").as_posix() for path in folder.rglob("*.yaml"))


def default_groups() -> set[str]:
    """The groups config.yaml's defaults list chooses from: `group=option` works for these, others need +."""
    defaults = OmegaConf.load(CONFIG_DIR / "config.yaml").get("defaults", [])
    chosen = [next(iter(entry)) for entry in defaults if isinstance(entry, DictConfig)]
    return {group.removeprefix("override ") for group in chosen}


def refuse_added_keys(parsed: list[Override], overrides: list[str]) -> None:
    """`+key=value` adds a key no option reads: a typo, so it is refused like any unknown key."""
    known_groups = group_names()
    for override in parsed:
        key = override.key_or_group
        if override.is_add() and key not in known_groups:
            if key in _known_keys(overrides):  # Hydra's `+` adds a key only where there is none
                value = override.get_value_element_as_str()
                raise ConfigError(
                    f"{override.input_line}: {key} is in the config already, and + only adds a key that "
                    f"is not: set it with {key}={value}"
                )
            raise ConfigError(unknown_key_message(key, overrides))
        # ++key sets a key that some option has (a preset's data.synthetic); a top-level one no option has
        # is a typo that would land in the config unread.
        if (
            override.is_force_add()
            and "." not in key
            and key not in known_groups
            and key not in _top_level_keys()
        ):
            raise ConfigError(unknown_key_message(key, overrides))
        if override.is_delete() and key not in known_groups:
            raise ConfigError(f"~{key} would remove a key nnexp reads: set a value instead, e.g. {key}=...")


def _top_level_keys() -> set[str]:
    return set(OmegaConf.load(CONFIG_DIR / "config.yaml")) - {"defaults"}


def group_names() -> set[str]:
    groups = {path.name for path in CONFIG_DIR.iterdir() if path.is_dir()}
    groups |= {path.relative_to(CONFIG_DIR).as_posix() for path in CONFIG_DIR.glob("*/*") if path.is_dir()}
    groups |= set(ConfigStore.instance().repo)
    return groups


def missing_option_message(error: MissingConfigException) -> str:
    missing = error.missing_cfg_file or ""
    group, _, option = missing.rpartition("/")
    top, _, below = missing.partition("/")
    if "/" in below and top != "hydra" and (CONFIG_DIR / top).is_dir():  # experiment=lectures/nope
        return not_an_option(top, below)
    options = sorted(error.options or [])
    unloadable = re.search(r"Could not load '([\w/]+)/([^'/]+)'", str(error))
    if unloadable and not options:  # one of a list of options (logger=[csv,foo]): Hydra names no choices
        return not_an_option(*unloadable.groups())
    if not group or not options:
        return first_line(error)
    return not_an_option(group, option, options)


HYDRA_PLUGINS = ("joblib", "submitit_local", "submitit_slurm", "optuna")  # what nnexp's sweep extra brings


def not_an_option(group: str, option: str, options: list[str] | None = None) -> str:
    if group.startswith("hydra/") and option in HYDRA_PLUGINS:  # named by nnexp's own gpus/parallel/slurm
        typed = next((arg for arg in sys.argv[1:] if arg.startswith(f"{group}=")), f"{group}={option}")
        return f"{typed} needs Hydra's {option} plugin, which is not installed: pip install -e '.[sweep]'"
    if options is None:
        options = options_of(group)
    hint = difflib.get_close_matches(option, options, n=1)
    suggestion = f" (did you mean {group}={hint[0]}?)" if hint else ""
    plugin = ""
    if "hydra" in group:  # joblib, submitit and optuna come with nnexp's sweep extra
        plugin = "; the parallel, slurm and optuna ones need pip install -e '.[sweep]'"
    return f"{group}={option} is not an option{suggestion}: choose one of {', '.join(options)}{plugin}"


# What other tools call a key nnexp names otherwise: Lightning's lr_find takes min_lr and max_lr.
OTHER_TOOLS_NAMES = {"min_lr": "start_lr", "max_lr": "end_lr"}


def unknown_key_message(key: str, overrides: list[str]) -> str:
    group = key.split(".", 1)[0]
    chosen = {line.split("=", 1)[0].lstrip("+~") for line in overrides}
    if "." in key and group in group_names() - default_groups() and group not in chosen:
        return f"unknown key {key}: {group} is not in the config until it is added: {how_to_choose(group)}"
    candidates = _known_keys(overrides)
    head, _, last = key.rpartition(".")
    renamed = f"{head}.{OTHER_TOOLS_NAMES.get(last)}".lstrip(".")
    close = difflib.get_close_matches(key, candidates, n=1, cutoff=0.6)
    if renamed in candidates:
        close = [renamed]
    if not close:
        last = key.rsplit(".", 1)[-1]
        by_name = {candidate.rsplit(".", 1)[-1]: candidate for candidate in candidates}
        names = difflib.get_close_matches(last, list(by_name), n=1, cutoff=0.7)
        close = [by_name[names[0]]] if names else []
    suggestion = f" (did you mean {close[0]}?)" if close else ""
    return f"unknown key {key}{suggestion}; `nnexp --cfg job` shows every key"


def _known_keys(overrides: list[str]) -> list[str]:
    """Every key of the config the user's group choices select (the defaults if they do not compose)."""
    groups = group_names()
    choices = [line for line in overrides if line.split("=", 1)[0].lstrip("+~") in groups and "," not in line]
    for attempt in (choices, []):
        try:
            with config_dir():
                cfg = compose(config_name="config", overrides=attempt)
            break
        except (HydraException, ValueError):  # ValueError: a group given true, null or a number
            continue
    else:
        return sorted(groups)
    keys: list[str] = []
    _walk(OmegaConf.masked_copy(cfg, [key for key in cfg if key != "hydra"]), "", keys)
    return sorted(set(keys) | groups)


def _walk(node: object, prefix: str, keys: list[str]) -> None:
    if isinstance(node, DictConfig):
        for key in node:
            path = f"{prefix}{key}"
            keys.append(path)
            _walk(node._get_node(key), f"{path}.", keys)


def key_in(message: str) -> str | None:
    match = re.search(r"(?:override|at|key) '([^']+)'", message)
    return match.group(1) if match else None


@contextlib.contextmanager
def config_dir() -> Iterator[None]:
    """Hydra initialised on nnexp's config folder once, for every composition inside."""
    global _INITIALISED
    if _INITIALISED:
        yield
        return
    register_free_keys()  # model=custom and data=custom compose from this node, however nnexp was entered
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3", job_name="nnexp"):
        _INITIALISED = True
        try:
            yield
        finally:
            _INITIALISED = False


_INITIALISED = False
