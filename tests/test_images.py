"""MNIST / Fashion-MNIST through torchvision's real loaders, on IDX files each test writes itself."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from test_language_models import write_book

import nnexp
from conftest import read_summary, write_fish_csv
from nnexp.config.data_fit import check_augment
from nnexp.data import DataSpec, TensorSplit
from nnexp.data.images import CACHE_FILE, load_images, write_idx_dataset
from nnexp.errors import ConfigError, DataError
from nnexp.train.augment import RandomAffine, augmented, build_augment

TRAIN, TEST = 60, 20


def fake_images(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random 28x28 images whose first pixel is their index, so every split row can be traced back."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
    images[:, 0, 0] = np.arange(count)
    return images, rng.integers(0, 10, size=count).astype(np.uint8)


def write_dataset(root: Path, name: str, compress: bool) -> None:
    write_idx_dataset(root, name, fake_images(TRAIN, 1), fake_images(TEST, 2), compress)


def load(root: Path, name: str, **options) -> object:
    settings = dict(
        root=str(root),
        download=False,
        val_size=10,
        split_seed=0,
        normalize=False,
        synthetic=False,
        synthetic_sizes=[TRAIN, TEST],
    )
    return load_images(name, **{**settings, **options})


@pytest.mark.parametrize("compress", [True, False], ids=["gz", "raw"])
@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_fast_path_equals_torchvision_totensor(tmp_path: Path, name: str, compress: bool) -> None:
    from torchvision import datasets, transforms

    write_dataset(tmp_path, name, compress)
    bundle = load(tmp_path, name)
    assert bundle.spec.input_shape == (1, 28, 28) and bundle.spec.num_outputs == 10
    assert bundle.spec.sizes == {"train": TRAIN - 10, "val": 10, "test": TEST}
    assert bundle.spec.details["synthetic"] is False

    folder = {"mnist": datasets.MNIST, "fashion_mnist": datasets.FashionMNIST}[name]
    reference = {
        train: folder(str(tmp_path), train=train, transform=transforms.ToTensor()) for train in (True, False)
    }
    seen = []
    for part, split in bundle.splits().items():
        assert split.inputs.dtype == torch.float32
        images, labels = next(split.batches(len(split)))
        for image, label in zip(images, labels, strict=True):
            index = round(image[0, 0, 0].item() * 255)  # the first pixel holds the image's index
            expected_image, expected_label = reference[part != "test"][index]
            assert torch.equal(image, expected_image)  # exact: the same float32 division
            assert label.item() == expected_label
            seen.append((part != "test", index))
    assert sorted(seen) == sorted([(True, i) for i in range(TRAIN)] + [(False, i) for i in range(TEST)])


def test_decoded_tensors_are_cached_and_refreshed_when_files_change(tmp_path: Path, monkeypatch) -> None:
    from nnexp.data import images

    write_dataset(tmp_path, "mnist", compress=True)
    decoded = load(tmp_path, "mnist", val_size=0)
    assert (tmp_path / "MNIST" / CACHE_FILE).is_file()

    # The next load reads the cache and never reaches torchvision (the one place nnexp imports it, seconds
    # of start-up; that a run on image data imports nothing more: test_a_run_imports_only_the_heavy_...).
    with monkeypatch.context() as guard:
        guard.setattr(images, "_read_with_torchvision", lambda *_: pytest.fail("decoded again, not cached"))
        cached = load(tmp_path, "mnist", val_size=0)
    assert len(cached.train) == TRAIN
    for part in ("train", "test"):
        assert torch.equal(getattr(cached, part).inputs, getattr(decoded, part).inputs)
        assert torch.equal(getattr(cached, part).targets, getattr(decoded, part).targets)

    new_images, new_labels = fake_images(TEST, 9)
    write_idx_dataset(tmp_path, "mnist", fake_images(TRAIN, 1), (new_images, new_labels), compress=False)
    bundle = load(tmp_path, "mnist")
    assert torch.equal(bundle.test.targets, torch.from_numpy(new_labels).long())


def test_normalize_uses_training_statistics(tmp_path: Path) -> None:
    write_dataset(tmp_path, "fashion_mnist", compress=False)
    bundle = load(tmp_path, "fashion_mnist", normalize=True, val_size=0)
    images, _ = next(bundle.train.batches(len(bundle.train)))
    assert abs(images.mean().item()) < 1e-4 and abs(images.std().item() - 1) < 1e-3


def test_missing_files_are_one_line_error_naming_the_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte.gz") as caught:
        load(tmp_path, "mnist")
    assert str(tmp_path / "MNIST" / "raw") in str(caught.value)

    # `nnexp data=fashion_mnist ...`, in this process: the line the command prints, and no run folder
    overrides = ["data=fashion_mnist", f"data.root={tmp_path}", "data.download=false"]
    with pytest.raises(DataError) as refused:
        nnexp.run(overrides, output_dir=tmp_path / "run")
    assert refused.value.exit_code == 2
    lines = str(refused.value).splitlines()
    assert len(lines) == 1 and lines[0].startswith("data=fashion_mnist")
    assert "train-images-idx3-ubyte.gz" in lines[0] and "FashionMNIST/raw" in lines[0]
    assert not (tmp_path / "run").exists()


def test_a_failed_download_is_one_line_and_leaves_no_empty_folders(tmp_path: Path, monkeypatch) -> None:
    from torchvision import datasets

    monkeypatch.setattr(datasets.MNIST, "mirrors", ["http://127.0.0.1:9/"])  # a port nothing listens on
    with pytest.raises(DataError, match=r"the download failed"):
        load(tmp_path / "data" / "here", "mnist", download=True)
    assert list(tmp_path.iterdir()) == []


def test_synthetic_data_has_real_shapes_and_is_marked(tmp_path: Path) -> None:
    bundle = load(tmp_path / "nowhere", "mnist", synthetic=True, synthetic_sizes=[300, 50], val_size=0.2)
    assert bundle.spec.details["synthetic"] is True
    assert bundle.spec.sizes == {"train": 240, "val": 60, "test": 50}
    images, labels = next(bundle.train.batches(8))
    assert images.shape == (8, 1, 28, 28) and images.dtype == torch.float32
    assert labels.min() >= 0 and labels.max() < 10


def test_random_affine_draws_per_image_parameters() -> None:
    torch.manual_seed(0)
    images = torch.zeros(16, 1, 28, 28)
    images[:, :, 8:20, 12:16] = 1.0  # the same bar in every image
    out = RandomAffine(degrees=30, translate=0.1, scale=[0.9, 1.1], horizontal_flip=0.0)(images)
    assert out.shape == images.shape
    distinct = {tuple(image.flatten().round(decimals=3).tolist()) for image in out}
    assert len(distinct) == 16  # one set of parameters per batch would give one image

    identity = RandomAffine(degrees=0, translate=0.0, scale=[1.0, 1.0], horizontal_flip=0.0)(images)
    assert torch.allclose(identity, images, atol=1e-5)
    mirrored = RandomAffine(degrees=0, translate=0.0, scale=[1.0, 1.0], horizontal_flip=1.0)(images)
    assert torch.allclose(mirrored, images.flip(-1), atol=1e-5)


def test_augmentation_fills_with_the_background_and_leaves_the_split_alone() -> None:
    pixels = torch.zeros(4, 1, 28, 28, dtype=torch.uint8)
    split = TensorSplit(pixels, torch.zeros(4, dtype=torch.long), transform=lambda x: x.float() - 0.5)
    shifted = augmented(split, RandomAffine(degrees=0, translate=0.3, scale=[1.0, 1.0], horizontal_flip=0))
    images, _ = next(shifted.batches(4))
    assert torch.allclose(images, torch.full_like(images, -0.5), atol=1e-5)  # no 0-valued border
    assert torch.equal(next(split.batches(4))[0], torch.full((4, 1, 28, 28), -0.5))


def test_augment_refuses_mirrored_digits_and_non_images() -> None:
    options = dict(degrees=10, translate=0.1, scale=[0.9, 1.1], horizontal_flip=0.5)
    with pytest.raises(ConfigError, match="horizontal_flip"):
        check_augment(options, DataSpec("mnist", "classification", (1, 28, 28), 10))
    with pytest.raises(ConfigError, match="regularization=augment"):
        check_augment(options, DataSpec("Fish", "regression", (2,), 1))
    check_augment(options, DataSpec("fashion_mnist", "classification", (1, 28, 28), 10))
    assert build_augment(options)


def test_an_augmented_cnn_run_on_digits_completes_and_a_mirroring_one_is_refused(tmp_path: Path) -> None:
    augmented_cnn = ["model=cnn", "regularization=augment"]
    result = nnexp.run(
        [*augmented_cnn, "trainer.epochs=2", "trainer.max_batches_per_epoch=3"], output_dir=tmp_path / "run"
    )
    assert result.status == "completed" and read_summary(result.run_dir)["status"] == "completed"

    with pytest.raises(ConfigError, match="a mirrored digit is not the same digit") as refused:
        nnexp.run([*augmented_cnn, "regularization.augment.horizontal_flip=0.5"], output_dir=tmp_path / "no")
    assert refused.value.exit_code == 2 and not (tmp_path / "no").exists()


@pytest.mark.parametrize(
    ("data", "extra", "not_needed"),
    [
        ("digits", ["model=cnn"], {"torchvision"}),  # scikit-learn fits the logistic-regression baseline
        ("fish", ["model=linear"], {"torchvision", "sklearn"}),  # pandas reads the CSV
        # 900 x 784 training values: more than the logistic-regression baseline takes, so no scikit-learn
        ("mnist", ["data.synthetic=true", "data.synthetic_sizes=[1000,100]", "data.val_size=100"],
         {"torchvision", "pandas", "sklearn"}),
        # text data must not pay for torchvision's import (seconds)
        ("time_machine", ["model=gru", "model.hidden_size=8", "trainer.batch_size=4", "data.num_steps=8"],
         {"torchvision"}),
    ],
)  # fmt: skip
def test_a_run_imports_only_the_heavy_modules_its_data_needs(
    tmp_path: Path, data: str, extra: list[str], not_needed: set[str]
) -> None:
    if data == "fish":
        extra = [f"data.path={write_fish_csv(tmp_path / 'Fish.csv')}", *extra]
    if data == "time_machine":
        extra = [f"data.path={write_book(tmp_path / 'book.txt')}", *extra]
    result = subprocess.run(
        [
            sys.executable,
            "-X",
            "importtime",
            "-m",
            "nnexp",
            f"data={data}",
            *extra,
            "trainer.epochs=1",
            "trainer.max_batches_per_epoch=2",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if "import time:" in line]
    imported = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in lines}  # top-level packages
    assert "torch" in imported  # the check sees real imports
    assert not imported & not_needed
