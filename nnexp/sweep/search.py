"""An Optuna search that continues after a stop (`nnexp -m resume=SWEEP_FOLDER`), its finished trials
known to the sampler and none of them run again.

Hydra's Optuna sweeper (hydra-optuna-sweeper 1.3.0) pins Optuna 2.10.1, whose only lasting storage is a
database through SQLAlchemy 1.x: beside SQLAlchemy 2 (which mlflow needs) `sqlite:///` fails with an
AssertionError (SQLAlchemy 2 support came with Optuna 3.1). So the study lives in memory and the sweep
folder is its lasting record. Resuming enqueues the parameters of every job the search launched, in job
order, before the sampler proposes anything: each is launched again under its old number into its old
folder, where the sweep resume skips a completed one (returning the value its ledger recorded, which
the study is told), resumes a stopped one and reruns a failed one. Then the search goes on to
`n_trials`, the sampler knowing every earlier result.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import yaml

from nnexp.sweep.recorded import check_recorded_overrides

log = logging.getLogger("nnexp")


def replay_trials(sweep: Path, recorded: dict[str, Any]) -> int:
    """Make the study the sweeper creates in this process start with the sweep's launched trials.

    `recorded` is the sweep's multirun.yaml (its search space and overrides). Returns how many.
    """
    import optuna
    from hydra_plugins.hydra_optuna_sweeper._impl import create_params_from_overrides

    hydra = recorded["hydra"]
    space = [f"{name}={value}" for name, value in (hydra["sweeper"].get("params") or {}).items()]
    distributions, _ = create_params_from_overrides([*space, *hydra["overrides"]["task"]])
    replayed = [recorded_params(overrides, distributions) for overrides in launched_trials(sweep)]
    create_study = optuna.create_study

    def create_and_replay(*args: Any, **kwargs: Any) -> Any:
        study = create_study(*args, **kwargs)
        with warnings.catch_warnings():  # "enqueue_trial is experimental" in Optuna 2.10
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            for params in replayed:
                study.enqueue_trial(params)
        return study

    # The sweeper creates its study inside its sweep(), through this module attribute.
    optuna.create_study = create_and_replay
    return len(replayed)


def launched_trials(sweep: Path) -> list[list[str]]:
    """The overrides of jobs 0, 1, 2, ... of the sweep, up to the first job that was never launched."""
    trials = []
    while (overrides := sweep / str(len(trials)) / ".hydra" / "overrides.yaml").is_file():
        trials.append([str(line) for line in yaml.safe_load(overrides.read_text()) or []])
        check_recorded_overrides(trials[-1], overrides)
    return trials


def recorded_params(overrides: list[str], distributions: dict[str, Any]) -> dict[str, Any]:
    """A trial's searched parameters, as Optuna holds them, from the overrides its job ran with."""
    from optuna.distributions import (
        CategoricalDistribution,
        IntLogUniformDistribution,
        IntUniformDistribution,
    )

    given = dict(override.split("=", 1) for override in overrides if "=" in override)
    params: dict[str, Any] = {}
    for name, distribution in distributions.items():
        if name not in given:
            continue
        text = given[name]
        if isinstance(distribution, CategoricalDistribution):
            # the choices are Hydra-encoded values; an override shows each as str() of it
            params[name] = next((c for c in distribution.choices if str(c) == text), text)
        elif isinstance(distribution, (IntUniformDistribution, IntLogUniformDistribution)):
            params[name] = int(text)
        else:
            params[name] = float(text)
    return params


__all__ = ["launched_trials", "recorded_params", "replay_trials"]
