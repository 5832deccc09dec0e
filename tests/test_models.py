"""Models take their sizes from the data; initialisation schemes do what their names say."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from conftest import compose_config
from nnexp.config import checks, model_checks
from nnexp.errors import ConfigError
from nnexp.models.cnn import CNN
from nnexp.models.init import INITS, initialize
from nnexp.models.linear import Linear
from nnexp.models.mlp import MLP


def count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_linear_maps_any_input_shape_to_the_outputs():
    model = Linear(input_shape=(1, 8, 8), num_outputs=10)
    assert model(torch.zeros(5, 1, 8, 8)).shape == (5, 10)
    assert count(model) == 64 * 10 + 10


def test_mlp_has_the_requested_hidden_layers():
    model = MLP(input_shape=(64,), num_outputs=10, hidden=[256, 128], activation="tanh")
    assert model(torch.zeros(3, 64)).shape == (3, 10)
    assert count(model) == (64 * 256 + 256) + (256 * 128 + 128) + (128 * 10 + 10)
    assert sum(isinstance(m, nn.Tanh) for m in model.modules()) == 2


@pytest.mark.parametrize("name", ["relu", "sigmoid", "tanh", "leaky_relu", "prelu", "identity"])
def test_every_activation_builds(name):
    model = MLP(input_shape=(4,), num_outputs=2, hidden=[3], activation=name)
    assert model(torch.randn(2, 4)).shape == (2, 2)


def test_dropout_layers_appear_only_when_asked():
    assert not any(isinstance(m, nn.Dropout) for m in MLP((4,), 2, [3, 3]).modules())
    assert sum(isinstance(m, nn.Dropout) for m in MLP((4,), 2, [3, 3], dropout=0.5).modules()) == 2


def test_normal_init_uses_the_given_std_and_zero_biases():
    torch.manual_seed(0)
    model = MLP((500,), 10, [400])
    initialize(model, "normal", std=0.01)
    weight = model.layers[1].weight
    assert abs(weight.std().item() - 0.01) < 0.001
    assert torch.all(model.layers[1].bias == 0)


def test_std_zero_makes_every_weight_equal():
    model = MLP((5,), 3, [4])
    initialize(model, "normal", std=0.0)
    assert all(torch.all(p == 0) for p in model.parameters())


@pytest.mark.parametrize("scheme", ["xavier", "kaiming"])
def test_scaled_inits_change_the_weights(scheme):
    torch.manual_seed(0)
    model = Linear((100,), 100)
    before = model.linear.weight.clone()
    initialize(model, scheme)
    assert not torch.equal(before, model.linear.weight)
    expected_std = (2 / 200) ** 0.5 if scheme == "xavier" else (2 / 100) ** 0.5
    assert abs(model.linear.weight.std().item() - expected_std) < 0.2 * expected_std


def test_default_init_keeps_torchs_weights():
    model = Linear((3,), 2)
    before = model.linear.weight.clone()
    initialize(model, "default")
    assert torch.equal(before, model.linear.weight)


def kinds(model: nn.Module) -> list[type]:
    return [type(layer) for layer in model.layers]


def test_mlp_takes_one_activation_per_hidden_layer_as_seed_000s_sigmoid_relu_net():
    model = MLP((1, 28, 28), 10, hidden=[256, 256], activation=["sigmoid", "relu"])
    assert kinds(model) == [nn.Flatten, nn.Linear, nn.Sigmoid, nn.Linear, nn.ReLU, nn.Linear]
    assert count(model) == (784 * 256 + 256) + (256 * 256 + 256) + (256 * 10 + 10)


def test_identity_makes_a_linear_to_linear_stack():
    model = MLP((1,), 1, hidden=[3], activation="identity")
    assert kinds(model) == [nn.Flatten, nn.Linear, nn.Identity, nn.Linear]
    x = torch.randn(5, 1)  # the composition of two linear maps is one linear map
    weight = model.layers[3].weight @ model.layers[1].weight
    bias = model.layers[3].weight @ model.layers[1].bias + model.layers[3].bias
    assert torch.allclose(model(x), x @ weight.T + bias, atol=1e-6)


def test_output_activations_stack_in_order():
    model = MLP((64,), 10, hidden=[64], output_activation=["relu", "softmax"])
    assert kinds(model)[-3:] == [nn.Linear, nn.ReLU, nn.Softmax]
    assert torch.allclose(model(torch.randn(4, 64)).sum(dim=1), torch.ones(4))
    assert kinds(MLP((4,), 2, [3], output_activation="sigmoid"))[-1] is nn.Sigmoid


def test_a_list_of_activations_must_match_the_hidden_layers():
    message = r"model.activation=\[sigmoid,relu\] has 2 names for 1 hidden layer \(model.hidden\)"
    with pytest.raises(ConfigError, match=message):
        checks.check_config(
            compose_config("model=mlp", "model.hidden=[3]", "model.activation=[sigmoid,relu]")
        )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model.activation=[sigmoid,swish]"], "model.activation=[sigmoid,swish] is not allowed"),
        (["model.output_activation=[relu,x]"], "model.output_activation=[relu,x] is not allowed"),
        (["model.init_bias=random"], "model.init_bias=random is not allowed: use null"),
        (["model=resnet", "model.activation=[relu,tanh]"], "model=resnet takes one activation for all"),
        (["model=cnn", "model.pool=[max,median]"], "model.pool=[max,median] is not allowed"),
    ],
)
def test_activation_and_init_values_are_checked_by_name(overrides, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        checks.check_config(compose_config(*overrides))


def test_the_config_check_knows_every_init_the_models_do():
    assert model_checks.INITS == INITS  # the check imports no torch, so it keeps its own list


def test_cnn_blocks_take_their_own_activation_and_pool_and_global_average_pooling():
    # Seed 003's parameter-count net: no activations, no pooling but a global average over the image.
    model = CNN(
        (3, 256, 256), 10, channels=[64, 192], kernel_size=[3, 5], padding=0,
        activation="identity", pool=["none", "global_avg"],
    )  # fmt: skip
    assert model.features[0][0].in_channels == 3  # from the data
    assert isinstance(model.features[1][-1], nn.AdaptiveAvgPool2d)
    weights = sum(p.numel() for name, p in model.named_parameters() if name.endswith("weight"))
    assert weights == 310_848 and count(model) == 310_848 + 64 + 192 + 10
    small = CNN((3, 16, 16), 4, channels=[4, 6], activation=["tanh", "relu", "sigmoid"], pool=["max", "none"],
                pool_size=[4, 2], hidden=[5])  # fmt: skip
    assert [type(layer) for layer in small.features[0]] == [nn.Conv2d, nn.Tanh, nn.MaxPool2d]
    assert [type(layer) for layer in small.features[1]] == [nn.Conv2d, nn.ReLU]
    assert isinstance(small.head[2], nn.Sigmoid) and small.head[1].in_features == 6 * 4 * 4
    assert small(torch.rand(2, 3, 16, 16)).shape == (2, 4)
    with pytest.raises(ConfigError, match=r"has 2 names for 1 conv block \(model.channels\) then 0 hidden"):
        checks.check_config(compose_config("model=cnn", "model.activation=[relu,tanh]"))


def biases(model: nn.Module) -> torch.Tensor:
    return torch.cat([layer.bias for layer in model.modules() if isinstance(layer, nn.Linear)])


@pytest.mark.parametrize(
    ("scheme", "rule", "expected"),
    [
        ("default", None, "keep"),  # torch's weights and biases
        ("normal", None, "zero"),  # every other scheme zeroes the biases unless told
        ("kaiming_normal", None, "zero"),
        ("normal", "keep", "keep"),  # seed 000: normal weights, torch's biases
        ("default", "zero", "zero"),
        ("xavier", "normal", "normal"),
    ],
)
def test_the_bias_rule_is_the_schemes_own_unless_init_bias_says(scheme, rule, expected):
    torch.manual_seed(0)
    model = MLP((400,), 300, [400])
    before = biases(model).detach().clone()
    initialize(model, scheme, std=0.5, bias=rule)
    after = biases(model).detach()
    if expected == "keep":
        assert torch.equal(after, before)
    elif expected == "zero":
        assert torch.all(after == 0)
    else:
        assert abs(after.std().item() - 0.5) < 0.05 and not torch.equal(after, before)


@pytest.mark.parametrize(
    ("scheme", "variance"),
    [("xavier_normal", 2 / (300 + 200)), ("kaiming_normal", 2 / 300), ("kaiming", 2 / 300)],
)
def test_normal_scaled_inits_draw_with_their_variance(scheme, variance):
    torch.manual_seed(0)
    model = Linear((300,), 200)
    initialize(model, scheme)
    weight = model.linear.weight
    assert abs(weight.var().item() - variance) < 0.05 * variance
    assert abs(weight.mean().item()) < 0.01
