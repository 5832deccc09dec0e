"""A sweep's jobs get the config Hydra's own composition would give them, composed once per choice of
options (nnexp/cli/job_configs.py): node for node, Hydra's records of the overrides included."""

from __future__ import annotations

import pytest
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra._internal.utils import create_config_search_path
from hydra.errors import ConfigCompositionException
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from nnexp.cli.job_configs import _OncePerOptions, compose_jobs_once_per_options
from nnexp.paths import CONFIG_DIR


def hydras_own():
    own = ConfigLoaderImpl.__dict__["load_sweep_config"]
    return own.hydras_own if isinstance(own, _OncePerOptions) else own


@pytest.fixture
def loader() -> ConfigLoaderImpl:
    return ConfigLoaderImpl(config_search_path=create_config_search_path(str(CONFIG_DIR)))


def master(loader: ConfigLoaderImpl, overrides: list[str]) -> DictConfig:
    """The sweep's own config, as Hydra composes it before launching the jobs."""
    return loader.load_configuration(config_name="config", overrides=overrides, run_mode=RunMode.MULTIRUN)


def as_hydra_composes(loader, master_config, job: list[str]) -> DictConfig:
    return hydras_own()(loader, master_config, job)


def same(ours: DictConfig, hydras: DictConfig) -> bool:
    return (
        OmegaConf.to_container(ours, resolve=False) == OmegaConf.to_container(hydras, resolve=False)
        and OmegaConf.is_struct(ours) == OmegaConf.is_struct(hydras)
        and OmegaConf.is_readonly(ours.hydra) == OmegaConf.is_readonly(hydras.hydra)
    )


def test_a_sweep_over_seeds_is_composed_once_and_each_job_is_as_hydra_composes_it(loader):
    sweep = master(loader, ["experiment=digits_mlp", "seed=0,1,2"])
    once = _OncePerOptions(hydras_own())
    for seed in (0, 1, 2):
        job = ["experiment=digits_mlp", f"seed={seed}"]
        ours = once(loader, sweep, job)
        assert ours.seed == seed
        assert same(ours, as_hydra_composes(loader, sweep, job))
    assert len(once.composed) == 1


def test_jobs_choosing_other_options_are_composed_apart(loader):
    sweep = master(loader, ["optim=sgd,adam", "optim.lr=0.01,0.1"])
    once = _OncePerOptions(hydras_own())
    for optim in ("sgd", "adam"):
        for lr in ("0.01", "0.1"):
            job = [f"optim={optim}", f"optim.lr={lr}"]
            ours = once(loader, sweep, job)
            assert ours.hydra.runtime.choices.optim == optim and ours.optim.lr == float(lr)
            assert same(ours, as_hydra_composes(loader, sweep, job))
    assert len(once.composed) == 2


def test_hydras_records_of_the_overrides_follow_the_job(loader):
    """hydra.overrides.task and the folder name Hydra makes of them, with the sweep's Hydra settings."""
    settings = ["hydra.job.config.override_dirname.exclude_keys=[seed]", "hydra.job.chdir=false"]
    sweep = master(loader, [*settings, "seed=3,4", "trainer.epochs=2,5"])
    once = _OncePerOptions(hydras_own())
    for job in (["seed=3", "trainer.epochs=2"], ["seed=4", "trainer.epochs=5"]):
        ours = once(loader, sweep, job)
        assert list(ours.hydra.overrides.task) == job
        assert ours.hydra.job.override_dirname == job[1]  # seed excluded, as the setting says
        assert list(ours.hydra.overrides.hydra) == settings
        assert same(ours, as_hydra_composes(loader, sweep, job))


def test_additions_and_removals_are_composed_as_hydra_composes_them(loader):
    sweep = master(loader, ["seed=1,2"])
    once = _OncePerOptions(hydras_own())
    for job in (["+note=first", "seed=1"], ["+note=first", "seed=2"], ["~logger", "seed=1"]):
        assert same(once(loader, sweep, job), as_hydra_composes(loader, sweep, job))
    assert len(once.composed) == 2  # a key added is set on the composition; a group removed is an option


@pytest.mark.parametrize(
    "job",
    [
        ["seed=1", "trainer.epochs=1", "++trainer.epochs=2"],  # the later one wins: 2
        ["seed=1", "++trainer.epochs=2", "trainer.epochs=1"],  # 1
        ["seed=1", "trainer.epochs=2", "trainer={epochs: 1}"],  # a dict merged last: 1
        ["seed=1", "~trainer.epochs", "+trainer.epochs=3"],  # removed, then added: 3
    ],
)
def test_the_jobs_overrides_are_set_in_the_order_given(loader, job):
    sweep = master(loader, ["seed=1,2"])
    ours = _OncePerOptions(hydras_own())(loader, sweep, job)
    hydras = as_hydra_composes(loader, sweep, job)
    assert ours.trainer == hydras.trainer and same(ours, hydras)


def test_a_job_does_not_see_another_jobs_changes(loader):
    sweep = master(loader, ["seed=1,2"])
    once = _OncePerOptions(hydras_own())
    first = once(loader, sweep, ["seed=1"])
    first.hydra.job.num = 7  # as a launcher sets its job's number
    first.seed = 99
    second = once(loader, sweep, ["seed=2"])
    assert second.seed == 2 and OmegaConf.is_missing(second.hydra.job, "num")  # as Hydra leaves it


@pytest.mark.parametrize("job", [["seed=1", "epochz=3"], ["seed=1", "trainer.extra=2", "+trainer.extra=1"]])
def test_a_key_the_config_lacks_is_refused_as_hydra_refuses_it(loader, job):
    sweep = master(loader, ["seed=1,2"])
    once = _OncePerOptions(hydras_own())
    with pytest.raises(ConfigCompositionException) as ours:
        once(loader, sweep, job)
    with pytest.raises(ConfigCompositionException) as hydras:
        as_hydra_composes(loader, sweep, job)
    assert str(ours.value) == str(hydras.value)


def test_installing_it_twice_wraps_hydra_once():
    compose_jobs_once_per_options()
    installed = ConfigLoaderImpl.__dict__["load_sweep_config"]
    compose_jobs_once_per_options()
    assert ConfigLoaderImpl.__dict__["load_sweep_config"] is installed
    assert not isinstance(installed.hydras_own, _OncePerOptions)
