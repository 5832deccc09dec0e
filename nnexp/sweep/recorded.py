"""Which of a sweep folder's recorded overrides `nnexp -m resume=SWEEP` may replay.

A resumed sweep launches Hydra again with the overrides its multirun.yaml (and each job's
overrides.yaml) recorded. Those files are data somebody else may have written, and some overrides are
code: Hydra instantiates `hydra.launcher._target_` and `hydra.callbacks`, feeds `hydra.job_logging` to
logging.config.dictConfig (whose `()` key calls anything), adds `hydra.searchpath` folders to the
configs, and the SLURM launcher writes `hydra.launcher.setup` into the job's shell script. So a recorded
override is replayed only when it is one nnexp's own sweeps write: a task value whose targets and
resolvers pass nnexp/config/trust.py, the mode and folders of the sweep, a launcher or sweeper nnexp ships by
name, and their plain numeric or word settings.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from nnexp.config.trust import UntrustedConfig, is_trusted_target, unsafe_resolvers
from nnexp.errors import shown

LAUNCHERS = frozenset({"basic", "joblib", "submitit_local", "submitit_slurm", "parallel", "slurm", "gpus"})
SWEEPERS = frozenset({"basic", "optuna"})
# A resume sets the sweep's folder itself; a recorded subdir may only name each job's folder inside it.
_JOB_SUBDIR = re.compile(r"[\w.-]*\$\{hydra\.job\.num\}[\w.-]*\Z")
# Settings of the launchers and sweepers above that only size or name the work (no paths, no commands).
_LAUNCHER_SETTINGS = frozenset(
    {
        "n_jobs", "backend", "prefer", "pre_dispatch", "batch_size", "verbose", "timeout",
        "timeout_min", "signal_delay_s", "max_num_timeout", "partition", "gpus_per_node",
        "tasks_per_node", "cpus_per_task", "mem_gb", "nodes", "array_parallelism", "name", "qos",
        "account", "constraint",
    }
)  # fmt: skip
_SWEEPER_SETTINGS = frozenset(
    {"n_trials", "n_jobs", "direction", "study_name", "max_batch_size", "sampler.seed"}
)
_PLAIN = re.compile(r"[\w.,:@+%*-]*\Z")  # a number, a word, a list of them: nothing a shell or YAML acts on
_TARGET_WORD = re.compile(r"\b_target_\b")


def check_recorded_overrides(overrides: Iterable[str], source: Path) -> None:
    """Refuse, naming `source` and the override, any recorded override a resume must not replay."""
    for line in overrides:
        problem = _problem(str(line))
        if problem is not None:
            raise UntrustedConfig(
                f"{source}: the recorded override {shown(line)} {problem}; a sweep folder holds data, and "
                f"nnexp replays only the overrides its own sweeps write (refusing it: nothing was run)"
            )


def check_recorded_search_space(params: dict | None, source: Path) -> None:
    """An Optuna search's recorded `hydra.sweeper.params`: each a task key searched over plain values."""
    check_recorded_overrides((f"{key}={value}" for key, value in (params or {}).items()), source)


def _problem(line: str) -> str | None:
    key, has_value, value = line.partition("=")
    key = key.lstrip("+~")
    if key.startswith("hydra"):
        return _hydra_problem(key, value)
    if not has_value and not line.startswith("~"):
        return "is not a key=value override"
    return _task_problem(key, value)


def _task_problem(key: str, value: str) -> str | None:
    if key.split("@", 1)[0].rsplit(".", 1)[-1] == "_target_":
        choices = [choice.strip() for choice in value.split(",")]
        if all(is_trusted_target(choice) for choice in choices):
            return None
        return "names code to run (a _target_ that is not one of nnexp's builders or torch's classes)"
    if _TARGET_WORD.search(value):
        return "holds a _target_ (code to run) in its value"
    resolvers = unsafe_resolvers(value)
    return f"calls the resolver {resolvers[0]}, which a replayed override may not" if resolvers else None


def _hydra_problem(key: str, value: str) -> str | None:
    if key == "hydra.mode":
        return _plain(value)
    if key == "hydra.sweep.subdir":
        if _JOB_SUBDIR.match(value) and ".." not in value.split("${", 1)[0]:
            return None
        return "would put the jobs' folders outside the sweep or in one another (not ${hydra.job.num} alone)"
    if key == "hydra/launcher":
        return None if value in LAUNCHERS else f"names a launcher nnexp does not ship ({shown(value)})"
    if key == "hydra/sweeper":
        return None if value in SWEEPERS else f"names a sweeper nnexp does not ship ({shown(value)})"
    if key.startswith("hydra.launcher."):
        setting = key.removeprefix("hydra.launcher.")
        if setting not in _LAUNCHER_SETTINGS:
            return "sets a launcher option a resume does not replay"
        return _plain(value)
    if key.startswith("hydra.sweeper.params."):
        return _task_problem(key.removeprefix("hydra.sweeper.params."), value)
    if key.startswith("hydra.sweeper."):
        if key.removeprefix("hydra.sweeper.") not in _SWEEPER_SETTINGS:
            return "sets a sweeper option a resume does not replay"
        return _plain(value)
    return (
        "changes Hydra's own settings (callbacks, logging, search path, ...), which a resume does not replay"
    )


def _plain(value: str) -> str | None:
    return None if _PLAIN.match(value) else f"has a value other than plain numbers and words ({shown(value)})"


__all__ = ["LAUNCHERS", "SWEEPERS", "check_recorded_overrides", "check_recorded_search_space"]
