"""model=sequential: a network written as a list of layers, as the lectures write nn.Sequential.

Sizes come from the data (no 784 or 10 typed), the parameter count is known before training, and a
mistake in the list is one line naming the layer's position and the fix, exit 2, with no run folder.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import nnexp
from conftest import compose_config, read_summary
from nnexp.config.checks import check_config
from nnexp.data import DataSpec
from nnexp.errors import ConfigError
from nnexp.models.sequential import Sequential
from nnexp.train.build import build_model

DIGITS = DataSpec("digits", "classification", (1, 8, 8), 10)
MNIST = DataSpec("mnist", "classification", (1, 28, 28), 10)
COLOUR_256 = DataSpec("synthetic", "classification", (3, 256, 256), 10)  # seed 003's torch.rand(16,3,256,256)
FISH = DataSpec("fish", "regression", (2,), 1)

# The command docs/running.md shows, spelled as the shell passes it to nnexp.
README_LAYERS = (
    "model.layers=[{conv:{channels:8,kernel_size:3,padding:1}},relu,{pool:global_avg},flatten,linear]"
)
# Seed 003: Conv(3->64, 3x3) -> Conv(64->192, 5x5) -> AvgPool(250) -> Flatten -> Linear(192, 10).
SEED_003_LAYERS = (
    "model.layers=[{conv:{channels:64,kernel_size:3}},{conv:{channels:192,kernel_size:5}},"
    "{pool:{type:avg,kernel_size:250}},flatten,linear]"
)


def sequential(spec: DataSpec, *overrides: str) -> nn.Module:
    """What `nnexp model=sequential OVERRIDES` builds for data of this spec, from the real config files."""
    cfg = compose_config("model=sequential", *overrides)
    check_config(cfg)
    return build_model(cfg.model, spec)


def weights(model: nn.Module) -> int:
    return sum(p.numel() for name, p in model.named_parameters() if name.endswith("weight"))


def count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_the_command_line_spelling_reads_as_a_list_of_layers():
    layers = compose_config("model=sequential", README_LAYERS).model.layers
    assert list(layers) == [
        {"conv": {"channels": 8, "kernel_size": 3, "padding": 1}},
        "relu",
        {"pool": "global_avg"},
        "flatten",
        "linear",
    ]


def test_seed_003s_parameter_count_net_has_the_notebooks_310848_weights_on_3x256x256_inputs():
    model = sequential(COLOUR_256, SEED_003_LAYERS)
    assert [type(layer) for layer in model] == [nn.Conv2d, nn.Conv2d, nn.AvgPool2d, nn.Flatten, nn.Linear]
    assert model[0].in_channels == 3  # from the data, not typed
    assert model[4].in_features == 192 and model[4].out_features == 10  # (192, 1, 1) flattened; 10 classes
    assert weights(model) == 1728 + 307200 + 1920 == 310_848  # the notebook's sum, weights only
    assert count(model) == 310_848 + 64 + 192 + 10  # and the biases it leaves out


def test_global_average_pooling_gives_the_same_count_on_any_image_size():
    layers = SEED_003_LAYERS.replace("{pool:{type:avg,kernel_size:250}}", "{pool:global_avg}")
    big, small = (
        sequential(COLOUR_256, layers),
        sequential(DataSpec("x", "classification", (3, 12, 12), 10), layers),
    )
    assert weights(big) == weights(small) == 310_848
    assert small(torch.rand(2, 3, 12, 12)).shape == (2, 10)


def test_the_readme_net_fits_digits_and_is_counted_before_training():
    model = sequential(DIGITS, README_LAYERS)
    assert count(model) == (1 * 8 * 9 + 8) + (8 * 10 + 10)  # conv 1->8 3x3, linear 8->10: 170
    assert model(torch.rand(5, 1, 8, 8)).shape == (5, 10)


def test_seed_000s_sigmoid_relu_net_on_28x28_images():
    model = sequential(MNIST, "model.layers=[flatten,{linear:256},sigmoid,{linear:256},relu,linear]")
    assert [type(layer) for layer in model] == [
        nn.Flatten,
        nn.Linear,
        nn.Sigmoid,
        nn.Linear,
        nn.ReLU,
        nn.Linear,
    ]
    assert count(model) == (784 * 256 + 256) + (256 * 256 + 256) + (256 * 10 + 10)


def test_a_linear_to_linear_regression_ends_in_the_datas_one_target():
    model = sequential(FISH, "model.layers=[{linear:8},identity,linear]")
    assert count(model) == (2 * 8 + 8) + (8 + 1)
    assert model(torch.rand(3, 2)).shape == (3, 1)


def test_the_default_layer_list_is_the_default_mlp():
    default_mlp = build_model(compose_config("model=mlp").model, DIGITS)
    weights = (64 * 256 + 256) + (256 * 256 + 256) + (256 * 10 + 10)  # 64-256-256-10
    assert count(sequential(DIGITS)) == count(default_mlp) == weights


def test_batchnorm_takes_its_size_from_the_layer_before_it_and_options_reach_torch():
    model = sequential(
        DIGITS,
        "model.layers=[{conv:{channels:4,padding:same,bias:false}},batchnorm,{leaky_relu:0.2},"
        "{pool:{type:max,kernel_size:2}},flatten,{linear:{out_features:16,bias:false}},"
        "{batchnorm:{momentum:0.5}},{dropout:0.3},linear,log_softmax]",
    )
    conv, norm2d, leaky, pool, _, linear, norm1d, drop, head, log_softmax = model
    assert conv.bias is None and conv.padding == "same" and conv.in_channels == 1
    assert isinstance(norm2d, nn.BatchNorm2d) and norm2d.num_features == 4
    assert leaky.negative_slope == 0.2 and isinstance(pool, nn.MaxPool2d)
    assert linear.in_features == 4 * 4 * 4 and linear.bias is None
    assert isinstance(norm1d, nn.BatchNorm1d) and norm1d.num_features == 16 and norm1d.momentum == 0.5
    assert drop.p == 0.3 and head.out_features == 10
    outputs = model.eval()(torch.rand(3, 1, 8, 8))
    assert torch.allclose(outputs.exp().sum(dim=1), torch.ones(3))  # log-probabilities over the classes


def test_layers_are_built_in_order_so_a_seed_gives_the_hand_written_nn_sequentials_weights():
    torch.manual_seed(7)
    ours = Sequential((1, 8, 8), 10, ["flatten", {"linear": 16}, "relu", "linear"])
    torch.manual_seed(7)
    theirs = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))
    for (name, mine), (_, reference) in zip(
        ours.state_dict().items(), theirs.state_dict().items(), strict=True
    ):
        assert torch.equal(mine, reference), name


def test_every_layer_name_builds():
    names = ["relu", "sigmoid", "tanh", "leaky_relu", "prelu", "identity", "softmax", "log_softmax"]
    layers = ["flatten", {"linear": 6}, "batchnorm", "dropout", *names, "linear"]
    assert Sequential((1, 8, 8), 10, layers).eval()(torch.rand(2, 1, 8, 8)).shape == (2, 10)
    images = [{"conv": 2}, "batchnorm", "pool", {"pool": "avg"}, {"pool": "global_avg"}, "flatten", "linear"]
    assert Sequential((3, 8, 8), 4, images).eval()(torch.rand(2, 3, 8, 8)).shape == (2, 4)


# Mistakes found by reading the list (before any data is loaded) and by fitting it to the data's shape.
MISTAKES = {
    "[flatten,{linear:64},relu,swish,linear]": "model.layers layer 4 is 'swish', which is not a layer nnexp "
    "knows: use one of linear, conv, pool, batchnorm, dropout, flatten, relu, sigmoid, tanh, leaky_relu, "
    "prelu, identity, softmax, log_softmax",
    "[flatten,{linear:{size:64}},linear]": "model.layers layer 2 (linear) has no option 'size': "
    "its options are out_features, bias",
    "[{conv:{kernel_size:3}},flatten,linear]": "model.layers layer 1 (conv) needs channels",
    "[{pool:mean},flatten,linear]": "layer 1 (pool) has type='mean': use one of max, avg, global_avg",
    "[flatten,{dropout:1.5},linear]": "model.layers layer 2 (dropout) has p=1.5: use a probability in [0, 1)",
    "[flatten,{relu:2},linear]": "model.layers layer 2 (relu) takes no options",
    "[flatten,linear,relu,linear]": "model.layers layer 2 (linear) has no size, and only the last linear "
    "layer takes its size from the data: write e.g. {linear: 64}",
    "[flatten,{linear:64,relu:null}]": "model.layers layer 2 is",
    "[]": "model.layers=[] is not a layer list",
    "[{pool:{type:global_avg,kernel_size:3}},flatten,linear]": "model.layers layer 1 (pool) averages the "
    "whole image and takes no other options: write {pool: global_avg}",
}
SHAPE_MISTAKES = {
    "[{linear:64},linear]": "model.layers layer 1 (linear) gets 1x8x8 per example and needs a vector: "
    "put flatten before it",
    "[flatten,{conv:8},linear]": "model.layers layer 2 (conv) needs images (channels, height, width) and "
    "gets 64 features per example",
    "[flatten,{linear:64},relu]": "model.layers ends with 64 features per example, and this data needs 10 "
    "outputs: end the list with a bare linear",
    "[{conv:8},relu]": "end the list with flatten, linear",
    "[{conv:{channels:8,padding:same,stride:2}},flatten,linear]": "model.layers layer 1 (conv) cannot be "
    "built: padding='same' is not supported for strided convolutions; change its options",
    "[{conv:{channels:8,kernel_size:9}},flatten,linear]": "model.layers layer 1 (conv) cannot take 1x8x8",
    "[{pool:{type:max,kernel_size:4}},{pool:{type:max,kernel_size:4}},flatten,linear]": "model.layers "
    "layer 2 (pool) cannot take 1x2x2",
}


@pytest.mark.parametrize("layers", MISTAKES)
def test_a_mistake_in_the_list_is_named_by_the_config_check(layers):
    with pytest.raises(ConfigError) as caught:
        check_config(compose_config("model=sequential", f"model.layers={layers}"))
    assert MISTAKES[layers] in str(caught.value)
    assert "\n" not in str(caught.value)


def test_regularization_dropout_points_to_a_dropout_layer():
    with pytest.raises(ConfigError, match=r"write dropout into model.layers where you want it"):
        check_config(compose_config("model=sequential", "regularization=dropout"))


@pytest.mark.parametrize("layers", SHAPE_MISTAKES)
def test_a_layer_that_cannot_follow_the_shape_before_it_is_named_when_built(layers):
    cfg = compose_config("model=sequential", f"model.layers={layers}")
    check_config(cfg)  # the list itself reads fine
    with pytest.raises(ConfigError) as caught:
        build_model(cfg.model, DIGITS)
    assert SHAPE_MISTAKES[layers] in str(caught.value)
    assert "\n" not in str(caught.value)


# The command line's runs, composed, checked and trained as `nnexp OVERRIDES` does, in this process.


def test_the_readme_command_trains_on_digits_images(tmp_path):
    result = nnexp.run(["model=sequential", README_LAYERS, "debug=smoke"], output_dir=tmp_path / "run")
    # the line the console shows as the run starts, kept in the run's log
    assert "model: Sequential, 170 parameters" in (result.run_dir / "nnexp.log").read_text()
    summary = read_summary(result.run_dir)
    assert summary["status"] == "completed" and summary["num_parameters"] == 170


def test_a_flattened_digits_net_with_dropout_trains(tmp_path):
    overrides = [
        "model=sequential",
        "model.layers=[flatten,{linear:32},tanh,{dropout:0.1},linear]",
        "model.init=xavier_normal",
        "debug=smoke",
    ]
    result = nnexp.run(overrides, output_dir=tmp_path / "run")
    assert read_summary(result.run_dir)["num_parameters"] == (64 * 32 + 32) + (32 * 10 + 10)


COMMAND_LINE_MISTAKES = [
    ("[flatten,{linear:64},relu,swish,linear]", "model.layers layer 4 is 'swish'"),  # read before the run
    ("[{linear:64},linear]", "model.layers layer 1 (linear) gets 1x8x8"),  # found against the data
    ("[flatten,{linear:64},relu]", "this data needs 10 outputs: end the list with a bare linear"),
]


@pytest.mark.parametrize(("layers", "message"), COMMAND_LINE_MISTAKES)
def test_a_mistake_on_the_command_line_is_one_line_exit_2_and_no_run_folder(
    tmp_path, monkeypatch, layers, message
):
    """Each way a list goes wrong, through the command's checks and run in this process (nnexp.run): the
    one line, exit code 2, and the run folder (claimed under outputs/ before the data is read) gone. The
    process itself, for a mistake found once its run has started (its folder made, the data read), is
    tests/test_usage_errors.py::test_the_cli_exits_2_with_one_line_and_no_run_folder."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as refused:
        nnexp.run(["model=sequential", f"model.layers={layers}"])
    assert refused.value.exit_code == 2
    assert message in str(refused.value) and "\n" not in str(refused.value)
    assert not (tmp_path / "outputs").exists()
