"""Compose and check the command line's config before Hydra runs anything.

Hydra reports a typo and a crash alike (exit 1, several lines), lets `+epochz=3` past, and makes
the run folder before a value is ever read. Here every such mistake becomes one line and exit 2,
with nothing created.
"""

from __future__ import annotations

import difflib
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import (
    ConfigCompositionException,
    HydraException,
    MissingConfigException,
    OverrideParseException,
)
from omegaconf import DictConfig, OmegaConf

from nnexp.cli.checks import check_config
from nnexp.cli.hydra_hooks import claim_named_dir
from nnexp.errors import ConfigError, first_line
from nnexp.paths import CONFIG_DIR
from nnexp.runs.folder import run_above, run_at_or_below


def preflight(overrides: list[str], multirun: bool = False) -> None:
    """Raise ConfigError for the first mistake in `overrides`, as `nnexp OVERRIDES` would meet it.

    A sweep is checked value by value for composition; a value that is merely out of range fails
    only its own job, so the other jobs of the sweep still run.
    """
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except OverrideParseException as error:
        unquoted = [
            arg
            for arg in overrides
            if not arg.isascii() and "=" in arg and arg.split("=", 1)[1][:1] not in "'\""
        ]
        if unquoted:  # Hydra's grammar takes letters beyond ASCII only inside quotes
            key, _, value = unquoted[0].partition("=")
            raise ConfigError(
                f"cannot read {unquoted[0]}: a value with letters beyond ASCII must be quoted; "
                f"write it as '{key}=\"{value}\"'"
            ) from None
        raise ConfigError(f"cannot read the command line: {first_line(error)}") from None
    _refuse_added_keys(parsed, overrides)
    swept = {override.key_or_group for override in parsed if override.is_sweep_override()}
    named: Path | None = None
    for number, point in enumerate(_points_to_check(parsed) if multirun else [overrides]):
        cfg = _compose(point, overrides)
        if number == 0:
            named = _check_output_root(cfg, multirun)
        cfg = OmegaConf.masked_copy(cfg, [key for key in cfg if key != "hydra"])
        try:
            check_config(cfg)
        except ConfigError as error:
            if not (multirun and error.key in swept):
                raise
    if named is not None:  # every check passed: now the folder is made this process's
        claim_named_dir(named)


def _points_to_check(parsed: list[Override]) -> Iterator[list[str]]:
    """One override list per value of each sweep (others at their first value), not the product."""
    first = [_point_value(override, 0) for override in parsed]
    yield [line for line in first if line is not None]
    for index, override in enumerate(parsed):
        for position in range(1, _sweep_length(override)):
            point = list(first)
            point[index] = _point_value(override, position)
            yield [line for line in point if line is not None]


def _sweep_values(override: Override) -> list[str] | None:
    if not override.is_sweep_override():
        return None
    try:
        return list(override.sweep_string_iterator())
    except HydraException:
        return None  # an interval for Optuna: nothing to enumerate


def _sweep_length(override: Override) -> int:
    values = _sweep_values(override)
    return len(values) if values else 1


def _point_value(override: Override, position: int) -> str | None:
    if not override.is_sweep_override():
        return override.input_line
    values = _sweep_values(override)
    if not values:
        return None
    return f"{override.get_key_element()}={values[position]}"


def check_plugins(overrides: list[str]) -> None:
    """ConfigError when the launcher or sweeper `overrides` choose needs a Hydra plugin that is not
    installed (`nnexp -m resume=SWEEP hydra/launcher=parallel` on the base install)."""
    chosen = [arg for arg in overrides if arg.startswith(("hydra/launcher=", "hydra/sweeper="))]
    if chosen:
        _compose(chosen, overrides)


def _compose(point: list[str], all_overrides: list[str]) -> DictConfig:
    _refuse_values_naming_no_option(point)
    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3", job_name="nnexp"):
            cfg = compose(config_name="config", overrides=point, return_hydra_config=True)
    except MissingConfigException as error:
        raise ConfigError(_missing_option_message(error)) from None
    except ConfigCompositionException as error:
        if str(error).startswith("Ambiguous value for argument"):  # a,b without -m
            line = str(error).split("'", 2)[1] if "'" in str(error) else "key=a,b"
            raise ConfigError(
                f"{line} gives several values: to run each, sweep with -m (nnexp -m {line}); "
                f"for one list value, write it in brackets"
            ) from None
        key = _key_in(str(error))
        if key is None:
            raise ConfigError(first_line(error)) from None
        if key in _groups() and "No match in the defaults list" in str(error):
            line = next(line for line in point if line.split("=", 1)[0] == key)
            raise ConfigError(f"{key} is not in the default config: add it with a +, as +{line}") from None
        raise ConfigError(_unknown_key_message(key, all_overrides)) from None
    return cfg


def _refuse_values_naming_no_option(point: list[str]) -> None:
    """`lr_find=true`, `scheduler=null`: Hydra reads true, null and numbers as values, never as an option's
    name, and fails with a traceback; a group's option must be named."""
    groups = _groups()
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
            raise ConfigError(f"{group}={value} does not name an option of {group}: {_how_to_choose(group)}")


def _how_to_choose(group: str) -> str:
    """`use +lr_find=exponential`, or `choose one of ...`; with a + for a group the defaults do not list."""
    options = _options_of(group)
    plus = "" if group in _default_groups() else "+"
    if not options:
        return f"name one of its options, as {plus}{group}=OPTION"
    if len(options) == 1:
        return f"use {plus}{group}={options[0]}"
    return f"choose one of {', '.join(options)} (e.g. {plus}{group}={options[0]})"


def _options_of(group: str) -> list[str]:
    """The group's options; those in a subfolder are named with it (experiment=lectures/fish_unshuffled)."""
    folder = CONFIG_DIR / group
    return sorted(path.relative_to(folder).with_suffix("").as_posix() for path in folder.rglob("*.yaml"))


def _default_groups() -> set[str]:
    """The groups config.yaml's defaults list chooses from: `group=option` works for these, others need +."""
    defaults = OmegaConf.load(CONFIG_DIR / "config.yaml").get("defaults", [])
    chosen = [next(iter(entry)) for entry in defaults if isinstance(entry, DictConfig)]
    return {group.removeprefix("override ") for group in chosen}


def _check_output_root(cfg: DictConfig, multirun: bool) -> Path | None:
    """Run folders will be created under the fixed start of hydra.run.dir: it must be a writable folder.
    Returns the folder when it is named outright (no pattern), to be claimed once every check passed."""
    key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    # Read unresolved: resolving the pattern would claim a folder.
    raw = (cfg.hydra.sweep if multirun else cfg.hydra.run)._get_node("dir")._value()
    fixed = str(raw).removeprefix("${nnexp_new_dir:").split("${", 1)[0] or "."
    if ".." in Path(fixed).parts:  # Hydra would make the folders the '..' climbs out of
        raise ConfigError(f"{key}={fixed}: write the folder without '..', as {os.path.relpath(fixed)}")
    if multirun:
        subdir = str(cfg.hydra.sweep._get_node("subdir")._value())
        if "${" not in subdir or ".." in Path(subdir).parts:
            raise ConfigError(
                f"hydra.sweep.subdir={subdir} would give every job the same folder, or one outside the "
                f"sweep: keep ${{hydra.job.num}} in it (e.g. hydra.sweep.subdir=job_${{hydra.job.num}})"
            )
    if "${" not in str(raw):  # a folder named outright is used as it is: never one that holds runs
        _refuse_a_folder_of_runs(Path(fixed), key)
    elif (around := run_above(Path(fixed) / "new")) is not None:  # a pattern's folders would land in a run
        raise ConfigError(
            f"{key}: its folders would be made under {fixed}, inside the run {around}; "
            f"move that run away or set {key}=another/folder"
        )
    existing = Path(fixed).absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(
            f"cannot create run folders under {fixed}: {existing} is a file, not a folder; "
            f"move it away or set {key}=another/folder"
        )
    try:  # the real test of writability (os.access trusts root, even on read-only mounts)
        os.rmdir(tempfile.mkdtemp(prefix=".nnexp-write-test-", dir=existing))
    except OSError as error:
        raise ConfigError(
            f"cannot create run folders under {fixed}: {existing} is not writable ({error.strerror}); "
            f"run from a writable folder or set {key}=another/folder"
        ) from None
    return Path(fixed) if "${" not in str(raw) else None


def _refuse_a_folder_of_runs(folder: Path, key: str) -> None:
    inside = run_above(folder)
    if inside is not None:
        raise ConfigError(
            f"{key}={folder} lies inside the run {inside}, and nnexp never writes into one: "
            f"give a folder of its own"
        )
    taken = run_at_or_below(folder)
    if taken is not None:
        held = "holds a run already" if taken == folder else f"holds runs already (e.g. {taken})"
        raise ConfigError(
            f"{key}={folder} {held}, and nnexp never writes over or among them: continue one with "
            f"nnexp resume=RUN_FOLDER, or give a new folder"
        )


def _refuse_added_keys(parsed: list[Override], overrides: list[str]) -> None:
    """`+key=value` adds a key no option reads: a typo, so it is refused like any unknown key."""
    known_groups = _groups()
    for override in parsed:
        key = override.key_or_group
        if override.is_add() and key not in known_groups:
            raise ConfigError(_unknown_key_message(key, overrides))
        # ++key sets a key that some option has (a preset's data.synthetic); a top-level one no option has
        # is a typo that would land in the config unread.
        if (
            override.is_force_add()
            and "." not in key
            and key not in known_groups
            and key not in _top_level_keys()
        ):
            raise ConfigError(_unknown_key_message(key, overrides))
        if override.is_delete() and key not in known_groups:
            raise ConfigError(f"~{key} would remove a key nnexp reads: set a value instead, e.g. {key}=...")


def _top_level_keys() -> set[str]:
    return set(OmegaConf.load(CONFIG_DIR / "config.yaml")) - {"defaults"}


def _groups() -> set[str]:
    groups = {path.name for path in CONFIG_DIR.iterdir() if path.is_dir()}
    groups |= {path.relative_to(CONFIG_DIR).as_posix() for path in CONFIG_DIR.glob("*/*") if path.is_dir()}
    groups |= set(ConfigStore.instance().repo)
    return groups


def _missing_option_message(error: MissingConfigException) -> str:
    missing = error.missing_cfg_file or ""
    group, _, option = missing.rpartition("/")
    top, _, below = missing.partition("/")
    if "/" in below and top != "hydra" and (CONFIG_DIR / top).is_dir():  # experiment=lectures/nope
        return _not_an_option(top, below)
    options = sorted(error.options or [])
    unloadable = re.search(r"Could not load '([\w/]+)/([^'/]+)'", str(error))
    if unloadable and not options:  # one of a list of options (logger=[csv,foo]): Hydra names no choices
        return _not_an_option(*unloadable.groups())
    if not group or not options:
        return first_line(error)
    return _not_an_option(group, option, options)


HYDRA_PLUGINS = ("joblib", "submitit_local", "submitit_slurm", "optuna")  # what nnexp's sweep extra brings


def _not_an_option(group: str, option: str, options: list[str] | None = None) -> str:
    if group.startswith("hydra/") and option in HYDRA_PLUGINS:  # named by nnexp's own gpus/parallel/slurm
        typed = next((arg for arg in sys.argv[1:] if arg.startswith(f"{group}=")), f"{group}={option}")
        return f"{typed} needs Hydra's {option} plugin, which is not installed: pip install -e '.[sweep]'"
    if options is None:
        options = _options_of(group)
    hint = difflib.get_close_matches(option, options, n=1)
    suggestion = f" (did you mean {group}={hint[0]}?)" if hint else ""
    plugin = ""
    if "hydra" in group:  # joblib, submitit and optuna come with nnexp's sweep extra
        plugin = "; the parallel, slurm and optuna ones need pip install -e '.[sweep]'"
    return f"{group}={option} is not an option{suggestion}: choose one of {', '.join(options)}{plugin}"


def _unknown_key_message(key: str, overrides: list[str]) -> str:
    group = key.split(".", 1)[0]
    chosen = {line.split("=", 1)[0].lstrip("+~") for line in overrides}
    if "." in key and group in _groups() - _default_groups() and group not in chosen:
        return f"unknown key {key}: {group} is not in the config until it is added: {_how_to_choose(group)}"
    candidates = _known_keys(overrides)
    close = difflib.get_close_matches(key, candidates, n=1, cutoff=0.6)
    if not close:
        last = key.rsplit(".", 1)[-1]
        by_name = {candidate.rsplit(".", 1)[-1]: candidate for candidate in candidates}
        names = difflib.get_close_matches(last, list(by_name), n=1, cutoff=0.7)
        close = [by_name[names[0]]] if names else []
    suggestion = f" (did you mean {close[0]}?)" if close else ""
    return f"unknown key {key}{suggestion}; `nnexp --cfg job` shows every key"


def _known_keys(overrides: list[str]) -> list[str]:
    """Every key of the config the user's group choices select (the defaults if they do not compose)."""
    groups = _groups()
    choices = [line for line in overrides if line.split("=", 1)[0].lstrip("+~") in groups and "," not in line]
    for attempt in (choices, []):
        try:
            with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3", job_name="nnexp"):
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


def _key_in(message: str) -> str | None:
    match = re.search(r"(?:override|at|key) '([^']+)'", message)
    return match.group(1) if match else None
