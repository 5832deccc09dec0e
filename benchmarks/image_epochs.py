"""One training epoch over 60,000 MNIST-format images, three ways, side by side in one process.

    python benchmarks/image_epochs.py [--repeats 3] [--models mlp lenet] [--threads N]

- runner: `nnexp.runs.run.run` on `data=mnist` (the same code path as the `nnexp` command, console on),
  its epoch time read from the run's metrics.csv (`train_seconds`);
- hand: the best plain PyTorch loop: float images resident in memory, a seeded permutation, slices;
- lecture: `DataLoader(datasets.MNIST(..., transform=ToTensor()), batch_size, shuffle=True)`.

The images are random, written as real IDX files (what torchvision reads); each loop trains a fresh
model of the same class with SGD and the same batch size. Repeats are interleaved, so a change in the
machine's load hits all three alike; medians are reported. Not part of the unit tests: run on demand.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import importlib.util
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from rich.console import Console
from torch import nn

from nnexp.data import DataSpec
from nnexp.data.images import write_idx_dataset

MODELS = {  # name -> the config overrides that pick it (the hand and lecture loops build the same)
    "mlp": ["model=mlp", "model.hidden=[256]"],  # 784-256-10
    "lenet": ["model=lenet"],
}
MNIST_SPEC = DataSpec("mnist", "classification", (1, 28, 28), 10)


def write_synthetic_mnist(root: Path, num_train: int = 60_000, num_test: int = 10_000, seed: int = 0) -> Path:
    """Random images and labels as the four MNIST IDX files under root/MNIST/raw."""
    rng = np.random.default_rng(seed)

    def part(count: int) -> tuple[np.ndarray, np.ndarray]:
        return rng.integers(0, 256, (count, 28, 28), dtype=np.uint8), rng.integers(
            0, 10, count, dtype=np.uint8
        )

    return write_idx_dataset(root, "mnist", part(num_train), part(num_test), compress=False)


def compose(*overrides: str):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from nnexp.cli.hydra_hooks import register_resolvers
    from nnexp.paths import CONFIG_DIR

    register_resolvers()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return hydra_compose(config_name="config", overrides=list(overrides))


def make_model(model: str, seed: int) -> nn.Module:
    from nnexp.train.build import build_model

    torch.manual_seed(seed)
    return build_model(compose(*MODELS[model]).model, MNIST_SPEC)


def train_epoch(model: nn.Module, batches, lr: float) -> float:
    """The plain training step over `batches`; returns the seconds it took."""
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    model.train()
    started = time.perf_counter()
    for images, labels in batches:
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(images), labels)
        loss.backward()
        optimizer.step()
    return time.perf_counter() - started


def hand_epoch(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int, lr: float
) -> float:
    """Tensor-resident: float images already in memory, batches sliced from a permutation."""

    def batches():
        order = torch.randperm(len(labels))
        for start in range(0, len(labels), batch_size):
            index = order[start : start + batch_size]
            yield images[index], labels[index]

    return train_epoch(model, batches(), lr)


def lecture_epoch(model: nn.Module, root: Path, batch_size: int, lr: float) -> float:
    """The lecture's pipeline: a PIL image and a ToTensor call per sample, collated by a DataLoader."""
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    dataset = datasets.MNIST(str(root), train=True, download=False, transform=transforms.ToTensor())
    return train_epoch(model, DataLoader(dataset, batch_size=batch_size, shuffle=True), lr)


def lightning_available() -> bool:
    return importlib.util.find_spec("lightning") is not None  # pip install -e .[bench]


def lightning_epoch(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int, lr: float, root_dir: Path
) -> float:
    """PyTorch Lightning with its defaults: `Trainer(max_epochs=1, accelerator="cpu")` (progress bar,
    logger, checkpoint, model summary on), fed a DataLoader over a TensorDataset of the same float images,
    the loss logged each step as Lightning's own examples do. Timed from the epoch's start to its end
    (a callback), like the runner's `train_seconds`; root_dir takes its logs and checkpoint."""
    import lightning as L
    from torch.utils.data import DataLoader, TensorDataset

    class Classifier(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_index: int) -> torch.Tensor:
            inputs, targets = batch
            loss = F.cross_entropy(self.model(inputs), targets)
            self.log("train_loss", loss)
            return loss

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=lr)

    class EpochClock(L.Callback):
        def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
            self.started = time.perf_counter()

        def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
            self.seconds = time.perf_counter() - self.started

    clock = EpochClock()
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", default_root_dir=root_dir, callbacks=[clock])
    loader = DataLoader(TensorDataset(images, labels), batch_size=batch_size, shuffle=True)
    with contextlib.redirect_stdout(sys.stderr):  # its progress bar and summary; stdout keeps the table
        trainer.fit(Classifier(), loader)
    return clock.seconds


def runner_epoch(model: str, root: Path, batch_size: int, lr: float, seed: int, run_dir: Path) -> float:
    """One epoch through nnexp.runs.run.run, as `nnexp` runs it; the epoch time the run itself recorded."""
    from nnexp.runs.run import run

    cfg = compose(
        "data=mnist",
        f"data.root={root}",
        "data.download=false",
        "data.val_size=0",  # an epoch of training only, as in the other two loops
        *MODELS[model],
        "optim=sgd",
        f"optim.lr={lr}",
        f"trainer.batch_size={batch_size}",
        "trainer.epochs=1",
        "device=cpu",
        f"seed={seed}",
    )
    run(cfg, run_dir, Console())
    with (run_dir / "metrics.csv").open() as handle:
        return float(next(csv.DictReader(handle))["train_seconds"])


def measure(
    models: list[str], repeats: int, root: Path, batch_size: int = 256, lr: float = 0.1
) -> list[dict[str, float | str]]:
    """Median epoch seconds per model and loop, and the ratios the issue sets targets for."""
    from torchvision import datasets

    train = datasets.MNIST(str(root), train=True, download=False)
    images = train.data.unsqueeze(1).float().div(255)  # (60000, 1, 28, 28), as ToTensor gives
    labels = train.targets
    rows = []
    for model in models:
        times: dict[str, list[float]] = {"runner": [], "hand": [], "lecture": []}
        for repeat in range(repeats):
            for loop in times:
                if loop == "hand":
                    seconds = hand_epoch(make_model(model, repeat), images, labels, batch_size, lr)
                elif loop == "runner":
                    run_dir = Path(tempfile.mkdtemp(prefix=f"runner_{model}_"))
                    seconds = runner_epoch(model, root, batch_size, lr, repeat, run_dir)
                else:
                    seconds = lecture_epoch(make_model(model, repeat), root, batch_size, lr)
                times[loop].append(seconds)
                print(f"{model} {loop} repeat {repeat + 1}: {seconds:.3f} s", file=sys.stderr)
        median = {name: statistics.median(values) for name, values in times.items()}
        rows.append(
            {
                "model": model,
                "runner_s": median["runner"],
                "hand_s": median["hand"],
                "lecture_s": median["lecture"],
                "runner_over_hand": median["runner"] / median["hand"],
                "lecture_over_runner": median["lecture"] / median["runner"],
            }
        )
    return rows


def format_table(rows: list[dict[str, float | str]]) -> str:
    lines = [
        "| model | runner s/epoch | hand loop s/epoch | lecture loop s/epoch "
        "| runner / hand | lecture / runner |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['model']} | {row['runner_s']:.2f} | {row['hand_s']:.2f} | {row['lecture_s']:.2f} "
            f"| {row['runner_over_hand']:.2f}x | {row['lecture_over_runner']:.1f}x |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict[str, float | str]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument(
        "--root", type=Path, default=None, help="where to write the IDX files (a temp folder)"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)  # on a busy machine, 1 thread avoids OpenMP spin-waiting

    root = args.root or Path(tempfile.mkdtemp(prefix="nnexp_bench_"))
    write_synthetic_mnist(root)
    load = os.getloadavg()[0]
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average {load:.2f}",
        file=sys.stderr,
    )
    rows = measure(args.models, args.repeats, root, args.batch_size)
    print(format_table(rows))
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return rows


if __name__ == "__main__":
    main()
