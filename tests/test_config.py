"""The real config files compose as Hydra users expect, and bad values are refused by name."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from conftest import compose_config
from nnexp.config.checks import check_config
from nnexp.errors import ConfigError
from nnexp.paths import CONFIG_DIR, EXPERIMENT_DIR

GROUPS = ["data", "model", "loss", "optim", "scheduler", "regularization", "device", "trainer"]


def options_of(group: str) -> list[str]:
    return sorted(path.stem for path in (CONFIG_DIR / group).glob("*.yaml"))


def test_the_default_is_an_mlp_on_digits():
    cfg = compose_config()
    assert cfg.data._target_.endswith("load_digits")
    assert cfg.model._target_.endswith("MLP")
    assert cfg.loss.name == "auto"
    check_config(cfg)


@pytest.mark.parametrize(
    ("group", "option"), [(group, option) for group in GROUPS for option in options_of(group)]
)
def test_every_option_of_every_group_composes(group, option):
    cfg = compose_config(f"{group}={option}")
    assert OmegaConf.select(cfg, group) is not None


@pytest.mark.parametrize("experiment", sorted(path.stem for path in EXPERIMENT_DIR.glob("*.yaml")))
def test_every_experiment_composes_and_passes_the_checks(experiment):
    cfg = compose_config(f"experiment={experiment}")
    check_config(cfg)


def test_regularization_options_combine_as_a_list():
    cfg = compose_config("regularization=[l2,dropout,early_stopping]")
    assert set(cfg.regularization) == {"l2", "dropout", "early_stopping"}
    assert cfg.regularization.l2.weight_decay > 0


def test_the_documented_composition_works():
    cfg = compose_config(
        "model=mlp", "model.hidden=[256,128]", "model.activation=tanh", "optim=adam",
        "regularization=[l2,dropout]",
    )  # fmt: skip
    assert list(cfg.model.hidden) == [256, 128]
    assert cfg.model.activation == "tanh"
    assert cfg.optim._target_ == "torch.optim.Adam"
    check_config(cfg)


def test_fish_reads_its_file_from_the_data_root(monkeypatch):
    monkeypatch.setenv("NNEXP_DATA_ROOT", "/somewhere")
    assert compose_config("data=fish").data.path == "/somewhere/Fish.csv"


def test_experiment_values_override_the_groups_and_stay_overridable():
    cfg = compose_config("experiment=fish_linreg", "optim.lr=0.2")
    assert cfg.optim._target_ == "torch.optim.SGD"
    assert cfg.optim.lr == 0.2
    assert cfg.scheduler.T_max == cfg.trainer.epochs == 100


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optim.lr=-0.1", "optim.lr=-0.1 is not allowed: use a finite number > 0"),
        ("optim.lr=0", "optim.lr=0 is not allowed"),
        ("optim.lr=nan", "optim.lr=nan is not allowed"),
        ("model.dropout=1.5", "model.dropout=1.5 is not allowed: use a probability in [0, 1)"),
        ("model.activation=swish", "use one of relu, sigmoid, tanh, leaky_relu, prelu"),
        ("model.hidden=[0]", "model.hidden=[0] is not allowed"),
        ("model.init=zeros", "model.init=zeros is not allowed"),
        ("trainer.batch_size=-1", "trainer.batch_size=-1 is not allowed"),
        ("trainer.batch_size=0", "trainer.batch_size=0 is not allowed"),
        ("trainer.batch_size=half", "or `full` for full-batch"),
        ("trainer.epochs=-1", "trainer.epochs=-1 is not allowed"),
        ("trainer.epochs=abc", "trainer.epochs=abc is not allowed"),
        ("seed=1.5", "seed=1.5 is not allowed"),
        ("device.type=tpu", "device.type=tpu is not allowed"),
        ("data=csv", "data.features, data.path, data.target are required"),
    ],
)
def test_bad_values_are_refused_with_the_key_the_value_and_the_fix(override, message):
    with pytest.raises(ConfigError, match=None) as error:
        check_config(compose_config(override))
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_nesterov_needs_momentum():
    with pytest.raises(ConfigError, match="optim.nesterov=true needs momentum > 0"):
        check_config(compose_config("optim=sgd", "optim.nesterov=true"))
    check_config(compose_config("optim=sgd", "optim.nesterov=true", "optim.momentum=0.9"))


def test_dropout_needs_a_model_with_hidden_layers():
    with pytest.raises(ConfigError, match="regularization=dropout needs a model with hidden layers"):
        check_config(compose_config("model=linear", "regularization=dropout"))


def test_early_stopping_on_validation_needs_a_validation_split():
    with pytest.raises(ConfigError, match="set data.val_fraction=0.1"):
        check_config(compose_config("regularization=early_stopping", "data.val_fraction=0"))
