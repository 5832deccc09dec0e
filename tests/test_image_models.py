"""Image models take their sizes from the data; the image presets run end to end through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

import nnexp
from conftest import compose_config, read_summary
from nnexp.config.checks import check_config
from nnexp.data import DataSpec
from nnexp.errors import ConfigError
from nnexp.models.cnn import CNN
from nnexp.models.layers import DoesNotFit
from nnexp.models.resnet import ResidualBlock, ResNet
from nnexp.paths import EXPERIMENT_DIR
from nnexp.train.build import build_model

MNIST = DataSpec("mnist", "classification", (1, 28, 28), 10)
DIGITS = DataSpec("digits", "classification", (1, 8, 8), 10)


def count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def model_of(option: str, spec: DataSpec, *overrides: str) -> nn.Module:
    """The model `model=OPTION` builds for data with this spec, from the real config files."""
    return build_model(compose_config(f"model={option}", *overrides).model, spec)


@pytest.mark.parametrize(
    ("option", "spec", "parameters"),
    [
        ("three_blue", MNIST, (784 * 16 + 16) + (16 * 16 + 16) + (16 * 10 + 10)),  # 13,002
        ("cnn", DIGITS, (8 * 9 + 8) + (8 * 4 * 4 * 10 + 10)),  # the lecture's digits net: 1,370
        ("lenet", MNIST, 156 + 2416 + (400 * 120 + 120) + (120 * 84 + 84) + (84 * 10 + 10)),  # 61,706
    ],
)
def test_presets_have_the_textbook_parameter_counts(option, spec, parameters):
    model = model_of(option, spec)
    assert count(model) == parameters
    assert model(torch.zeros(2, *spec.input_shape)).shape == (2, 10)


def test_three_blue_is_sigmoid_through_to_its_outputs():
    model = model_of("three_blue", MNIST)
    outputs = model(torch.randn(4, 1, 28, 28) * 10)
    assert isinstance(model.layers[-1], nn.Sigmoid)
    assert outputs.min() >= 0 and outputs.max() <= 1


@pytest.mark.parametrize(
    ("option", "spec"),
    [("cnn", DIGITS), ("resnet", DIGITS), ("cnn", MNIST), ("lenet", MNIST), ("resnet", MNIST)],
)
def test_image_models_fit_the_image_size_of_the_data(option, spec):
    model = model_of(option, spec)
    model.eval()
    assert model(torch.rand(3, *spec.input_shape)).shape == (3, 10)


def test_cnn_options_shape_the_blocks():
    model = CNN(
        (1, 28, 28), 10, channels=[4, 6], kernel_size=[5, 3], stride=1, padding=[2, 1], pool="avg",
        batchnorm=True, activation="tanh", dropout=0.1, hidden=[32],
    )  # fmt: skip
    kinds = [type(layer) for layer in model.features[0]]
    assert kinds == [nn.Conv2d, nn.BatchNorm2d, nn.Tanh, nn.AvgPool2d, nn.Dropout]
    assert model.features[0][0].kernel_size == (5, 5) and model.features[0][0].bias is None
    assert model.features[1][0].kernel_size == (3, 3)
    assert model.head[1].in_features == 6 * 7 * 7  # 28 -> pool 14 -> pool 7
    assert CNN((1, 8, 8), 10, pool="none").head[1].in_features == 8 * 8 * 8


def test_cnn_refuses_blocks_that_shrink_the_image_to_nothing():
    with pytest.raises(ConfigError, match=r"model.channels=\[8, 8, 8, 8\]: block 4 shrinks the 8x8 input"):
        model_of("cnn", DIGITS, "model.channels=[8,8,8,8]")
    with pytest.raises(ConfigError, match=r"model.padding=\[1\] has 1 values for 2 conv blocks"):
        check_config(compose_config("model=cnn", "model.channels=[8,8]", "model.padding=[1]"))
    with pytest.raises(ConfigError, match="block 2 shrinks the 8x8 input"):
        model_of("lenet", DIGITS)  # LeNet's unpadded 5x5 conv needs more than 8x8 pixels
    with pytest.raises(ConfigError, match="model=cnn needs images"):
        model_of("cnn", DataSpec("Fish", "regression", (64,), 1))
    with pytest.raises(DoesNotFit):  # the model's own plain refusal, without the config's words
        CNN((1, 8, 8), 10, channels=[8, 8, 8, 8])


def test_residual_blocks_add_the_input_and_project_it_when_the_shape_changes():
    same = ResidualBlock(8, 8, stride=1, activation="relu")
    assert isinstance(same.skip, nn.Identity)
    nn.init.zeros_(same.residual[-1].weight)  # F(x) = 0, so y = relu(0 + x)
    x = torch.randn(2, 8, 6, 6)
    assert torch.allclose(same(x), torch.relu(x))

    wider = ResidualBlock(8, 16, stride=2, activation="relu")
    assert isinstance(wider.skip[0], nn.Conv2d) and wider.skip[0].kernel_size == (1, 1)
    assert wider(x).shape == (2, 16, 3, 3)


def test_resnet_depth_and_widths_are_configurable():
    model = ResNet((1, 28, 28), 10, widths=[8, 16], blocks_per_stage=3)
    blocks = [m for m in model.modules() if isinstance(m, ResidualBlock)]
    assert len(blocks) == 6
    assert sum(not isinstance(block.skip, nn.Identity) for block in blocks) == 1  # 8 -> 16, stride 2
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())


SMOKE = ["trainer.epochs=1", "trainer.max_batches_per_epoch=2"]
SYNTHETIC = ["data.synthetic=true", "data.synthetic_sizes=[512,128]", "data.val_size=64"]
PRESETS = sorted(path.stem for path in EXPERIMENT_DIR.glob("*.yaml"))
IMAGE_PRESETS = ["digits_cnn", "fashion_lenet", "fashion_mlp", "fashion_resnet", "fashion_softmax"]
IMAGE_PRESETS += ["mnist_cnn", "three_blue", "three_blue_lr500"]


def test_the_image_presets_are_all_listed_here():
    assert set(IMAGE_PRESETS) <= set(PRESETS)


def test_every_mnist_format_preset_runs_on_synthetic_data(tmp_path):
    # In this process (nnexp.run), one preset after another: a process each would mostly import torch.
    presets = [preset for preset in IMAGE_PRESETS if preset != "digits_cnn"]
    for preset in presets:
        result = nnexp.run([f"experiment={preset}", *SYNTHETIC, *SMOKE], output_dir=tmp_path / preset)
        summary = read_summary(result.run_dir)
        assert summary["status"] == "completed", preset
        assert summary["data"]["details"]["synthetic"] is True, preset


def test_the_digits_cnn_preset_runs(tmp_path):
    result = nnexp.run(["experiment=digits_cnn", *SMOKE], output_dir=tmp_path / "run")
    summary = read_summary(result.run_dir)
    assert summary["status"] == "completed" and summary["model"] == "CNN"
    assert summary["num_parameters"] == 1_370


def test_three_blue_reports_13002_parameters_and_writes_the_per_layer_counts(tmp_path):
    result = nnexp.run(["experiment=three_blue", *SYNTHETIC, *SMOKE], output_dir=tmp_path / "run")
    folder = result.run_dir
    logged = (folder / "nnexp.log").read_text()  # what the CLI prints as the run starts
    assert "MLP, 13,002 parameters" in logged
    assert "parameters per layer:" in logged
    assert read_summary(folder)["num_parameters"] == 13_002
    counts = json.loads((folder / "parameters.json").read_text())
    assert counts["total"] == 13_002
    assert [row["parameters"] for row in counts["layers"]] == [12_560, 272, 170]
    assert "SYNTHETIC" in logged  # a synthetic run says so


def test_image_config_values_are_checked_by_name(tmp_path: Path):
    with pytest.raises(ConfigError) as refused:
        nnexp.run(["data=mnist", "model=cnn", "model.pool=median"], output_dir=tmp_path / "run")
    assert refused.value.exit_code == 2
    assert "model.pool=median is not allowed: use one of max, avg, global_avg, none" in str(refused.value)
    assert list(tmp_path.iterdir()) == []
