"""Models take their sizes from the data; initialisation schemes do what their names say."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nnexp.models.init import initialize
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


@pytest.mark.parametrize("name", ["relu", "sigmoid", "tanh", "leaky_relu", "prelu"])
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
