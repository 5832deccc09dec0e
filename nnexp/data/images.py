"""MNIST and Fashion-MNIST: 28x28 grey images, 10 classes, read by torchvision's own loaders.

The fast path: torchvision decodes the IDX files once; the uint8 tensors are cached beside the raw
files (so later runs skip torchvision, which takes seconds to import) and scaled to float32 once, as
whole tensors, when a run loads them. No PIL image, no `ToTensor` and no DataLoader worker is involved
per sample, yet the floats equal what `ToTensor()` gives; a batch is one gather of float rows.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nnexp.atomic import write_atomically
from nnexp.data import DataBundle, DataSpec, TensorSplit
from nnexp.data.folds import hold_out
from nnexp.errors import DataError

log = logging.getLogger("nnexp")

CACHE_FILE = "nnexp_uint8.pt"
IMAGE_SHAPE = (1, 28, 28)


@dataclass(frozen=True)
class ImageSource:
    name: str  # as in `data=NAME`
    folder: str  # torchvision's folder under data.root, and its dataset class
    url: str  # where the four files can be fetched by hand
    classes: tuple[str, ...]


SOURCES = {
    "mnist": ImageSource(
        "mnist",
        "MNIST",
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        tuple(str(digit) for digit in range(10)),
    ),
    "fashion_mnist": ImageSource(
        "fashion_mnist",
        "FashionMNIST",
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        (
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ),
    ),
}
# torchvision's names for the decoded files; the downloads carry a .gz suffix.
RAW_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


class ScalePixels:
    """uint8 pixels (B, C, H, W) -> float32 in [0, 1], as `ToTensor` does; optionally (x - mean) / std."""

    def __init__(self, mean: float | None = None, std: float | None = None) -> None:
        self.mean, self.std = mean, std

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        images = pixels.to(torch.float32).div_(255)
        if self.mean is not None:
            images.sub_(self.mean).div_(self.std)
        return images


def load_mnist(**options: Any) -> DataBundle:
    return load_images("mnist", **options)


def load_fashion_mnist(**options: Any) -> DataBundle:
    return load_images("fashion_mnist", **options)


def load_images(
    name: str,
    root: str,
    download: bool,
    val_size: float | int,
    split_seed: int,
    normalize: bool,
    synthetic: bool,
    synthetic_sizes: list[int],
    folds: int | None = None,
    fold: int | None = None,
) -> DataBundle:
    """Train (minus `val_size` images carved off as validation) and the official test set."""
    source = SOURCES[name]
    if synthetic:
        tensors = synthetic_tensors(synthetic_sizes, len(source.classes), split_seed)
        details: dict[str, Any] = {
            "synthetic": True,
            "note": "random pixels and labels, for smoke runs and timing: accuracies mean nothing",
        }
        log.warning("data: SYNTHETIC %s (random pixels and labels); accuracies mean nothing", name)
    else:
        folder = Path(root) / source.folder
        tensors = read_cached(source, Path(root), download)
        details = {"synthetic": False, "files": str(folder / "raw"), "loader": f"torchvision {source.folder}"}

    # data.folds: fold `fold` of the training images validates (data/folds.py), else data.val_size of them
    train_rows, val_rows, fold_details = hold_out(
        np.arange(len(tensors["train_labels"])),
        val_size,
        split_seed,
        "data.val_size",
        folds=folds,
        fold=fold,
        labels=tensors["train_labels"].numpy(),
    )
    details.update(fold_details)
    train_images = tensors["train_images"][train_rows]
    if normalize:
        # Statistics of the training part only, so validation and test stay unseen.
        scaled = train_images.to(torch.float32) / 255
        scale = ScalePixels(scaled.mean().item(), scaled.std().item())
        details["scaling"] = f"pixels / 255, then (x - {scale.mean:.4f}) / {scale.std:.4f}"
    else:
        scale = ScalePixels()
        details["scaling"] = "pixels / 255, in [0, 1] (as ToTensor)"
    # How a new image's grey levels become model inputs: (grey / 255 * white - mean) / std (nnexp-predict).
    details["pixel_scale"] = {"white": 1.0, "mean": scale.mean or 0.0, "std": scale.std or 1.0}

    def split(images: torch.Tensor, labels: torch.Tensor) -> TensorSplit:
        # Scaled once, not per batch: converting uint8 batches cost an MLP epoch 3% (50 of 1,420 ms);
        # float32 takes 4x the memory, 200 MB for MNIST.
        return TensorSplit(scale(images.unsqueeze(1)), labels)  # (N, 1, 28, 28) float32

    train_labels = tensors["train_labels"]
    bundle = DataBundle(
        spec=DataSpec(
            name=name,
            task="classification",
            input_shape=IMAGE_SHAPE,
            num_outputs=len(source.classes),
            details={**details, "classes": list(source.classes)},
        ),
        train=split(train_images, train_labels[train_rows]),
        val=None if val_rows is None else split(tensors["train_images"][val_rows], train_labels[val_rows]),
        test=split(tensors["test_images"], tensors["test_labels"]),
    )
    bundle.spec.sizes.update({part: len(data) for part, data in bundle.splits().items()})
    return bundle


def read_cached(source: ImageSource, root: Path, download: bool) -> dict[str, torch.Tensor]:
    """The four uint8 tensors: from the cache when it matches the raw files, else via torchvision."""
    raw = root / source.folder / "raw"
    _decompress_downloads(raw)
    cache = root / source.folder / CACHE_FILE
    stamp = _stamp(raw)
    if stamp is not None and cache.is_file():
        try:
            cached = torch.load(cache, weights_only=True)
            if cached.get("stamp") == stamp:
                return cached["tensors"]
        except Exception:  # an unreadable or foreign cache is rebuilt below
            log.info("data: ignoring the unreadable cache %s", cache)
    if stamp is None and not download:
        raise DataError(_missing_files(source, raw, "data.download=false"))
    tensors = _read_with_torchvision(source, root, raw, download)
    try:
        # Written beside and swapped in, so a run starting meanwhile never reads half a file.
        content = {"stamp": _stamp(raw), "tensors": tensors}
        write_atomically(cache, lambda handle: torch.save(content, handle))
    except OSError as error:  # a read-only data folder: decode again next time
        log.info("data: could not cache the decoded images in %s (%s)", cache, error)
    return tensors


def _read_with_torchvision(
    source: ImageSource, root: Path, raw: Path, download: bool
) -> dict[str, torch.Tensor]:
    from torchvision import datasets  # here, not at the top: importing torchvision takes seconds

    dataset_class = getattr(datasets, source.folder)
    made = [folder for folder in (raw, *raw.parents) if not folder.exists()]  # torchvision makes them
    try:
        # torchvision prints every download attempt; a failure is reported below as one line.
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            train = dataset_class(str(root), train=True, download=download)
            test = dataset_class(str(root), train=False, download=download)
    except (RuntimeError, OSError, ValueError, AssertionError) as error:
        for folder in made:  # a refused run leaves no empty data folders behind
            with contextlib.suppress(OSError):
                folder.rmdir()
        if _stamp(raw) is None:
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise DataError(_missing_files(source, raw, f"the download failed: {reason}")) from None
        raise DataError(
            f"data={source.name}: the files in {raw} are not readable IDX files ({error})"
        ) from None
    return {
        "train_images": train.data,  # (60000, 28, 28) uint8
        "train_labels": train.targets,
        "test_images": test.data,
        "test_labels": test.targets,
    }


def _missing_files(source: ImageSource, raw: Path, why: str) -> str:
    names = ", ".join(f"{name}.gz" for name in RAW_FILES.values())
    return (
        f"data={source.name}: the {source.folder} files are not in {raw} ({why}): put {names} there "
        f"(from {source.url}), or set data.root to the folder that holds {source.folder}/raw; "
        f"data.synthetic=true runs on random images instead"
    )


def _decompress_downloads(raw: Path) -> None:
    """Files put there by hand are often still .gz; torchvision only reads the decoded ones."""
    for name in RAW_FILES.values():
        packed, unpacked = raw / f"{name}.gz", raw / name
        if packed.is_file() and not unpacked.is_file():
            try:
                with gzip.open(packed, "rb") as source, open(unpacked, "wb") as target:
                    shutil.copyfileobj(source, target)
            except OSError as error:  # a damaged download, or a read-only folder
                unpacked.unlink(missing_ok=True)
                raise DataError(f"{packed}: could not decompress it beside itself ({error})") from None


def _stamp(raw: Path) -> list[list[Any]] | None:
    """Name, size and modification time of each raw file; None when one is missing."""
    files = [raw / name for name in RAW_FILES.values()]
    if not all(path.is_file() for path in files):
        return None
    return [[path.name, path.stat().st_size, path.stat().st_mtime_ns] for path in files]


def synthetic_tensors(sizes: list[int], num_classes: int, seed: int) -> dict[str, torch.Tensor]:
    """Random uint8 images and labels with the shapes of the real data."""
    generator = torch.Generator().manual_seed(seed)
    num_train, num_test = sizes

    def images(count: int) -> torch.Tensor:
        return torch.randint(0, 256, (count, *IMAGE_SHAPE[1:]), dtype=torch.uint8, generator=generator)

    def labels(count: int) -> torch.Tensor:
        return torch.randint(0, num_classes, (count,), generator=generator)

    return {
        "train_images": images(num_train),
        "train_labels": labels(num_train),
        "test_images": images(num_test),
        "test_labels": labels(num_test),
    }


def write_idx(path: Path, array: np.ndarray, compress: bool = False) -> Path:
    """Write uint8 images (N, H, W) or labels (N,) in the IDX format of the MNIST files (optionally .gz)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(size).to_bytes(4, "big") for size in array.shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    opener = gzip.open if compress else open
    with opener(path, "wb") as handle:
        handle.write(header + array.tobytes())
    return path


def write_idx_dataset(
    root: Path,
    name: str,
    train: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    compress: bool,
) -> Path:
    """Write the four files of data=NAME under root/<Folder>/raw, as the real downloads are laid out."""
    raw = Path(root) / SOURCES[name].folder / "raw"
    suffix = ".gz" if compress else ""
    parts = {"train": train, "test": test}
    for key, file_name in RAW_FILES.items():
        part, kind = key.split("_")
        images, labels = parts[part]
        write_idx(raw / f"{file_name}{suffix}", images if kind == "images" else labels, compress)
    return raw
