"""Compose and check the command line's config before Hydra runs anything.

Hydra reports a typo and a crash alike (exit 1, several lines), lets `+epochz=3` past, and makes
the run folder before a value is ever read. Here every such mistake becomes one line and exit 2,
with nothing created.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from hydra import compose
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import (
    ConfigCompositionException,
    MissingConfigException,
    OverrideParseException,
)
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from nnexp.cli.hydra_hooks import claim_named_dir
from nnexp.cli.job_configs import sets_the_config
from nnexp.cli.mistakes import (
    config_dir,
    group_names,
    key_in,
    missing_option_message,
    refuse_added_keys,
    refuse_values_naming_no_option,
    unknown_key_message,
)
from nnexp.cli.preset_command import naming_the_preset_command
from nnexp.cli.run_folders import check_output_root
from nnexp.config.job import check_job
from nnexp.errors import ConfigError, command_line, first_line


def preflight(overrides: list[str], multirun: bool = False) -> DictConfig | None:
    """Raise ConfigError for the first mistake in `overrides`, as `nnexp OVERRIDES` would meet it.
    Returns the config composed for a single run (with Hydra's node); for a sweep, its first job's, where
    that has the `hydra.mode` Hydra would find for the whole command line (no option of a group swept:
    Hydra then composes it again to find its mode), else None.

    A sweep is checked whole before its first job: every job of a grid (Hydra's basic sweeper) is
    composed and checked as a single run would be (past EVERY_JOB_UP_TO jobs, every value of each swept
    key instead), an Optuna search space range by range; the first mistake names its job.
    """
    parsed = parse_overrides(overrides)
    refuse_added_keys(parsed, overrides)
    with config_dir():
        if not multirun and not any(override.is_sweep_override() for override in parsed):
            cfg = _compose(overrides, overrides)
            if cfg.hydra.mode != RunMode.MULTIRUN:  # a search preset (hparams_search) sweeps without -m
                named = check_output_root(cfg, multirun=False)
                with naming_the_preset_command(cfg):  # a preset's data file unset: the command that makes it
                    check_job(_job_of(cfg))
                if named is not None:  # every check passed: now the folder is made this process's
                    claim_named_dir(named)
                return cfg
        elif not multirun:  # several values without -m: a sweep only where the config makes it one
            first = [line for line in map(_first_value, parsed) if line is not None]
            if _compose(first, overrides).hydra.mode != RunMode.MULTIRUN:
                _compose(overrides, overrides)  # Hydra refuses them: said in one line with the fix
        named, first = _check_sweep(parsed, overrides)
    if named is not None:  # every job checked: now the sweep folder is made this process's
        claim_named_dir(named)
    groups = group_names()
    swept = [override.key_or_group for override in parsed if override.is_sweep_override()]
    return None if any(key in groups for key in swept) else first


def parse_overrides(overrides: list[str]) -> list[Override]:
    """Hydra's reading of the command line, or a ConfigError that says what it could not read."""
    try:
        return OverridesParser.create().parse_overrides(overrides)
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


def check_single_run(overrides: list[str]) -> DictConfig:
    """What preflight checks of one run's overrides, with the same messages, leaving out the run folder
    (nnexp.run names its own): for the Python API. Returns the config checked, the one the run is given
    (as Hydra composes it without its own node: struct), so the API composes once."""
    parsed = parse_overrides(overrides)
    refuse_added_keys(parsed, overrides)
    with config_dir():
        cfg = _compose(overrides, overrides)
        job = _job_of(cfg)
        with naming_the_preset_command(cfg):
            check_job(job)
    OmegaConf.set_struct(job, True)
    return job


def _job_of(cfg: DictConfig) -> DictConfig:
    """The config a run is given: what was composed with Hydra's node, less that node."""
    return OmegaConf.masked_copy(cfg, [key for key in cfg if key != "hydra"])


# A grid of up to this many jobs is checked job by job: Hydra composes each distinct choice of options once
# (~0.1 s), then each job takes ~10 ms (its values set, its config checked). Measured on a 2-core CPU
# shared with other work: 20 jobs 0.6 s, 100 jobs 1.2 s, 500 jobs 5 s (Hydra's launcher composes each job
# again, once per choice of options: cli/job_configs.py). A larger grid is checked value by value: each
# value of each swept key, the other keys at their first value, not the product.
EVERY_JOB_UP_TO = 500


@dataclass(frozen=True)
class _Point:
    """One config to compose and check, and how a mistake in it is named."""

    overrides: list[str]
    where: str  # "sweep job 2 of 3: optim.lr=-5"


def _check_sweep(parsed: list[Override], overrides: list[str]) -> tuple[Path | None, DictConfig]:
    """Check every job of a sweep (or every value and range of a search) before the first one runs;
    return the sweep folder when it is named outright, for the caller to claim, and the first point's
    config (Hydra's node kept)."""
    fixed_hydra = [override.input_line for override in parsed if override.is_hydra_override()]
    task = [override for override in parsed if not override.is_hydra_override()]
    for override in parsed:
        if override.is_hydra_override() and override.is_sweep_override():
            raise ConfigError(
                f"{override.input_line}: Hydra's own settings take one value in a sweep; sweep the "
                f"experiment's keys instead (e.g. optim.lr=0.01,0.1)"
            )
    # The sweeper (and its search space) is known once the config composes: compose a first point.
    first = [*fixed_hydra, *(line for line in map(_first_value, task) if line is not None)]
    compose_job = _JobComposer(overrides)
    cfg = compose_job.whole(first)
    sweeper = str(cfg.hydra.sweeper.get("_target_", ""))
    params = cfg.hydra.sweeper.get("params") or {}
    arguments = [f"{key}={value}" for key, value in params.items()]
    arguments += [override.input_line for override in task]
    searched = parse_overrides(arguments)
    if "optuna" in sweeper.lower():
        points = _search_points(searched, fixed_hydra, int(cfg.hydra.sweeper.get("n_trials") or 0))
    elif sweeper.endswith("BasicSweeper"):
        points = _grid_points(searched, fixed_hydra)
    else:  # another sweeper: every value it could be given, one at a time
        points = _value_points(searched, fixed_hydra, "sweep")
    named = check_output_root(cfg, multirun=True)  # Hydra's settings: the same in every job
    for point in points:
        try:
            check_job(compose_job(point.overrides))
        except ConfigError as error:
            raise ConfigError(f"{error} ({point.where})", key=error.key) from None
    return named, cfg


def _first_value(override: Override) -> str | None:
    """The override with its first value (an interval: its low end; a delete stays as it is)."""
    if not override.is_sweep_override():
        return override.input_line
    if override.is_interval_sweep():
        return f"{override.get_key_element()}={_low_and_high(override)[0]!r}"
    values = list(override.sweep_string_iterator())
    return f"{override.get_key_element()}={values[0]}" if values else None


def _by_key(parsed: list[Override]) -> dict[str, Override]:
    """As the sweepers read their arguments: one entry per key, a later one replacing an earlier one
    (so the command line overrides hydra.sweeper.params) at the earlier one's place."""
    keyed: dict[str, Override] = {}
    for override in parsed:
        keyed[override.get_key_element()] = override
    return keyed


def _grid_points(parsed: list[Override], fixed_hydra: list[str]) -> Iterator[_Point]:
    """Hydra's basic sweeper: the product of every swept key's values, in its order (job 0 first)."""
    keyed = _by_key(parsed)
    for key, override in keyed.items():
        if override.is_sweep_override() and not override.is_discrete_sweep():
            low, high = _low_and_high(override)
            raise ConfigError(
                f"{override.input_line} is a range, which only a search samples from (Optuna: "
                f"hparams_search=digits_optuna); a grid sweep takes values: e.g. {key}={low:g},{high:g}"
            )
        if override.is_sweep_override() and not list(override.sweep_string_iterator()):
            raise ConfigError(f"{override.input_line} gives no value to sweep over: give at least one")
    lines = [
        [f"{key}={value}" for value in override.sweep_string_iterator()]
        if override.is_sweep_override()
        else [f"{key}={override.get_value_element_as_str()}"]
        for key, override in keyed.items()
    ]
    total = math.prod(len(values) for values in lines)
    swept = [index for index, values in enumerate(lines) if len(values) > 1]

    def point(job: list[str], number: int) -> _Point:
        shown = "".join(f" {job[index]}" for index in swept)
        return _Point([*fixed_hydra, *job], f"sweep job {number} of {total}" + (f":{shown}" if shown else ""))

    if total <= EVERY_JOB_UP_TO:  # job by job, as Hydra's basic sweeper lists them
        [jobs] = BasicSweeper.split_arguments(list(keyed.values()), None)
        for number, job in enumerate(jobs, start=1):
            yield point(job, number)
        return
    # Too many to compose one by one: each value of each swept key once, the others at their first
    # (the keys with the fewest values first: `optim.lr=0.1,-1` is not found after 500 seeds).
    first = [values[0] for values in lines]
    yield point(first, 1)
    for index in sorted(swept, key=lambda index: len(lines[index])):  # the product's last key varies fastest
        stride = math.prod(len(values) for values in lines[index + 1 :])
        for position in range(1, len(lines[index])):
            job = list(first)
            job[index] = lines[index][position]
            yield point(job, 1 + position * stride)


def _search_points(parsed: list[Override], fixed_hydra: list[str], trials: int) -> Iterator[_Point]:
    """Optuna's search space: each choice, and both ends of each interval (low > high refused)."""
    keyed = _by_key(parsed)
    for key, override in keyed.items():
        if override.is_sweep_override() and override.is_interval_sweep():
            low, high = _low_and_high(override)
            shown = _typed(override)
            if low > high:
                raise ConfigError(
                    f"{key}={shown} runs from {low:g} down to {high:g}: an interval gives its low end "
                    f"first, as interval({high:g}, {low:g})"
                )
            if "log" in override.value().tags and low <= 0:
                raise ConfigError(
                    f"{key}={shown} is sampled on a log scale, which needs both ends > 0: "
                    f"start it above 0 (e.g. interval({high / 1000:g}, {high:g}))"
                )
    yield from _value_points(list(keyed.values()), fixed_hydra, f"search of {trials} trials")


def _value_points(parsed: list[Override], fixed_hydra: list[str], what: str) -> Iterator[_Point]:
    """Each value a sweep can give each key (an interval: the ends it can reach), the others at their
    first value: the first point, then one per other value."""
    keyed = _by_key(parsed)
    first = {key: _first_value(override) for key, override in keyed.items()}

    def point(key: str | None, line: str | None, shown: str) -> _Point:
        lines = dict(first)
        if key is not None:
            lines[key] = line
        chosen = [line for line in lines.values() if line is not None]
        return _Point([*fixed_hydra, *chosen], f"{what}: {shown}")

    swept = {key: override for key, override in keyed.items() if override.is_sweep_override()}
    shown = ", ".join(f"{key}={_values_of(override)[0][1]}" for key, override in swept.items())
    yield point(None, None, shown or "its fixed values")
    for key, override in swept.items():
        for line, label in _values_of(override)[1:]:
            yield point(key, line, f"{key}={label}")


def _values_of(override: Override) -> list[tuple[str, str]]:
    """(override line, how it is named) for each value a sweep override can give its key."""
    key = override.get_key_element()
    if override.is_interval_sweep():
        low, high = _low_and_high(override)
        reached = math.nextafter(high, -math.inf) if high > low else high  # a float interval excludes its top
        return [
            (f"{key}={low!r}", f"{low:g} (the low end of {_typed(override)})"),
            (f"{key}={reached!r}", f"{reached:g} (the high end of {_typed(override)})"),
        ]
    return [(f"{key}={value}", value) for value in override.sweep_string_iterator()]


def _typed(override: Override) -> str:
    """The value as it was written: interval(0.1, 1), tag(log, interval(1e-4, 0.1))."""
    return (override.input_line or "").split("=", 1)[-1]


def _low_and_high(override: Override) -> tuple[float, float]:
    interval = override.value()
    return float(interval.start), float(interval.end)


def check_plugins(overrides: list[str]) -> None:
    """ConfigError when the launcher or sweeper `overrides` choose needs a Hydra plugin that is not
    installed (`nnexp -m resume=SWEEP hydra/launcher=parallel` on the base install)."""
    chosen = [arg for arg in overrides if arg.startswith(("hydra/launcher=", "hydra/sweeper="))]
    if chosen:
        _compose(chosen, overrides)


def _compose(point: list[str], all_overrides: list[str]) -> DictConfig:
    refuse_values_naming_no_option(point)
    try:
        with config_dir():
            cfg = compose(config_name="config", overrides=point, return_hydra_config=True)
    except MissingConfigException as error:
        raise ConfigError(missing_option_message(error)) from None
    except ConfigCompositionException as error:
        raise _composition_error(error, point, all_overrides) from None
    return cfg


def _composition_error(
    error: ConfigCompositionException, point: list[str], all_overrides: list[str]
) -> ConfigError:
    if str(error).startswith("Ambiguous value for argument"):  # a,b without -m
        line = str(error).split("'", 2)[1] if "'" in str(error) else "key=a,b"
        return ConfigError(
            f"{line} gives several values: to run each, sweep with -m ({command_line('nnexp', '-m', line)}); "
            f"for one list value, write it in brackets"
        )
    key = key_in(str(error))
    if key is None:
        return ConfigError(first_line(error))
    if key in group_names() and "No match in the defaults list" in str(error):
        line = next(line for line in point if line.split("=", 1)[0] == key)
        return ConfigError(f"{key} is not in the default config: add it with a +, as +{line}")
    return ConfigError(unknown_key_message(key, all_overrides))


class _JobComposer:
    """Compose sweep jobs as Hydra does, fast: Hydra composes the defaults list (the groups' options) and
    then sets each plain `key=value` on the result (ConfigLoaderImpl._apply_overrides_to_config). Jobs
    that choose the same options share the first step here (~0.1 s); the second takes milliseconds."""

    def __init__(self, all_overrides: list[str]) -> None:
        self.all_overrides = all_overrides
        self.groups = group_names()
        self.composed: dict[tuple[str, ...], DictConfig] = {}

    def whole(self, point: list[str]) -> DictConfig:
        """The point composed by Hydra, its node kept; its options are not composed again for a job
        (a job sets the same keys as the point, so the point's own values are all replaced)."""
        cfg = _compose(point, self.all_overrides)
        self._keep(self._split(point)[1], cfg)
        return cfg

    def __call__(self, point: list[str]) -> DictConfig:
        """The job's config without Hydra's node, as a run reads it."""
        values, options = self._split(point)
        if options not in self.composed:
            self._keep(options, _compose(list(options), self.all_overrides))
        cfg = copy.deepcopy(self.composed[options])
        try:
            ConfigLoaderImpl._apply_overrides_to_config(values, cfg)
        except ConfigCompositionException as error:
            raise _composition_error(error, point, self.all_overrides) from None
        return cfg

    def _split(self, point: list[str]) -> tuple[list[Override], tuple[str, ...]]:
        """(the point's plain values, its options' lines)"""
        parsed = parse_overrides(point)
        values = [override for override in parsed if self._sets_a_value(override)]
        return values, tuple(override.input_line for override in parsed if not self._sets_a_value(override))

    def _keep(self, options: tuple[str, ...], cfg: DictConfig) -> None:
        job = _job_of(cfg)
        OmegaConf.set_struct(job, OmegaConf.is_struct(cfg))  # so a key the config lacks is refused
        self.composed[options] = job

    def _sets_a_value(self, override: Override) -> bool:
        """Whether Hydra sets `override` on the composed config, in the order given (a value, a key added
        or removed: `a=1 ++a=2` is 2), rather than reading it as a group's option; Hydra's own settings
        come first in every point and stay with the options."""
        if override.is_hydra_override():
            return False
        return sets_the_config(override, self.groups.__contains__)
