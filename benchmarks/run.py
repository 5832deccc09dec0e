"""The whole benchmark suite in one command: one table of medians and ratios (issue 7).

    python benchmarks/run.py                  # the full suite: about 10 minutes on an idle 2-core CPU
    python benchmarks/run.py --quick          # tiny sizes, one repeat: a smoke check (~2 minutes)
    python benchmarks/run.py --write-results  # also append a dated section to benchmarks/RESULTS.md

What it compares, side by side in this one process (start-up in fresh processes, as a user meets it):

- MLP 784-256-10 and LeNet-5, one epoch over 60,000 MNIST-format images (random pixels written as real
  IDX files), batch 256, SGD: the runner (`nnexp.runs.run.run`, console on; its `train_seconds`) vs the
  hand-written tensor-resident loop vs the lecture's `DataLoader(datasets.MNIST(..., ToTensor()))` with
  `num_workers` 0 and 2 (benchmarks/image_epochs.py), and PyTorch Lightning with its defaults when it is
  installed (`pip install -e .[bench]`; the column shows `-` without it);
- the digits CNN (`experiment=digits_cnn`) and the fish linear model (`experiment=fish_linreg`): tiny data,
  so what a user waits per epoch is mostly per-epoch overhead. Here the runner's epoch is the whole cycle
  (train, validate, metrics row, checkpoint), read as the time between its `epoch k/N` log lines; the hand
  loop trains, evaluates the validation split and reads both losses once, as a user printing them would;
- tokens per second of the GRU and RNN language-model presets vs a hand-written loop with the same shapes
  (benchmarks/lm_throughput.py);
- the compute floor of every model: forward + backward + step on one pre-built batch, repeated for as
  many steps as an epoch has, so every figure can also be read as a ratio to the floor;
- start-up: `nnexp --help`, `nnexp --cfg job` and the time to the first training step, vs
  `python -c "import torch"` (benchmarks/startup.py);
- end to end (`--only e2e`): whole-process wall time of `nnexp` vs a hand-written script for the default
  run, seed 004's 2,000-epoch full-batch run (also with `trainer.log_every_n_epochs=100`), the fish preset
  and a 5-run sweep, the default run against the same job as a lightning-hydra-template project
  (benchmarks/template/, with Lightning installed: `pip install -e .[bench]`), and `debug=smoke` on every
  preset (benchmarks/end_to_end.py; `--e2e-cases` picks cases, `--e2e-repeats` the interleaved pairs);
- a loaded machine (`--only loaded`, issue 28): the default run alone and beside four busy-loop processes
  (`python3 -c "while True: pass"`), nnexp's choice (threads from the free cores; passive OpenMP waits
  where the cores are shared as it starts) vs the same with torch's thread count (`trainer.threads=null`)
  vs nnexp as it was (OpenMP's default spin-wait, a thread per core); the 1-minute load of every
  measurement beside it. Not in the default list: it keeps the machine
  busy for minutes.
- the presets' stated times (`--only presets`, issue 28): each lecture preset (or `--presets NAME...`) run
  whole, its 1-minute load before and after, and the time its header and docs/lectures.md state rewritten
  (benchmarks/presets.py; `--presets-dry-run` writes nothing). Not in the default list: it takes long.

Ratios compare the time a unit of work takes (tokens per second are inverted first): `runner / hand`
1.05 means the runner takes 5% longer than the hand-written loop. Repeats are interleaved, so a change
in the machine's load hits every loop alike; measure on an idle machine (`uptime` load < 0.5).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime
import json
import logging
import math
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import end_to_end
import image_epochs
import lm_throughput
import presets
import startup
import torch
import torch.nn.functional as F
from rich.console import Console
from torch import nn

BENCHMARKS = Path(__file__).resolve().parent
RESULTS = BENCHMARKS / "RESULTS.md"
SHARED_DATA = BENCHMARKS.parents[1] / "shared" / "data"  # the book and Fish.csv, when they are there

# (sizes, repeats) of the full run and of --quick.
FULL = {
    "mnist": (60_000, 10_000),
    "image_repeats": 3,
    "tiny_epochs": 30,
    "tiny_repeats": 3,
    "lm": {"rounds": 3, "epochs": 4, "max_batches": 30},
    "startup_repeats": 5,
    "floor_repeats": 5,
    "e2e_repeats": 3,
    "loaded_repeats": 2,
    "busy_warmup_s": 60,  # the 1-minute load average climbs to 63% of the busy loops' load in a minute
}
QUICK = {
    "mnist": (2_048, 512),
    "image_repeats": 1,
    "tiny_epochs": 6,
    "tiny_repeats": 1,
    "lm": {"rounds": 1, "epochs": 2, "max_batches": 5},
    "startup_repeats": 1,
    "floor_repeats": 2,
    "e2e_repeats": 1,
    "loaded_repeats": 1,
    "busy_warmup_s": 10,
}
TINY_PRESETS = {"digits cnn": "digits_cnn", "fish linear": "fish_linreg"}
BATCH, LR = 256, 0.1  # the MNIST comparisons: batch 256, SGD


@contextlib.contextmanager
def threads_kept() -> Iterator[None]:
    """torch's thread count is global and the LM presets set it: each comparison starts from the default."""
    before = torch.get_num_threads()
    try:
        yield
    finally:
        torch.set_num_threads(before)


def note(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- the compute floor ------------------------------------------------------------------------------


def floor_seconds(step, steps: int, repeats: int) -> float:
    """Median seconds of `steps` calls of `step()` (after two warm-up calls)."""
    step(), step()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(steps):
            step()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def training_step(model: nn.Module, optimizer, loss_fn, inputs, targets, clip: float | None = None):
    """forward + backward + step on one batch, nothing else: the floor every loop is read against."""
    model.train()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(inputs), targets)
        loss.backward()
        if clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()

    return step


# --- MLP and LeNet on 60,000 MNIST-format images ------------------------------------------------------


def shown() -> Console:
    """The runner's console with its progress bar on, as in a terminal, even when stdout is a file."""
    return Console(file=sys.stderr, force_terminal=True)


def runner_image_epoch(name: str, root: Path, seed: int, run_dir: Path) -> float:
    """One epoch through `nnexp.runs.run.run` on `data=mnist`; the `train_seconds` the run recorded."""
    from nnexp.runs.run import run

    overrides = [
        "data=mnist",
        f"data.root={root}",
        "data.download=false",
        "data.val_size=0",  # an epoch of training only, as in the other loops
        *image_epochs.MODELS[name],
        "optim=sgd",
        f"optim.lr={LR}",
        f"trainer.batch_size={BATCH}",
        "trainer.epochs=1",
        "device=cpu",
        f"seed={seed}",
    ]
    run(image_epochs.compose(*overrides), run_dir, shown())
    with (run_dir / "metrics.csv").open() as handle:
        return float(next(csv.DictReader(handle))["train_seconds"])


def lecture_epoch(model: nn.Module, root: Path, num_workers: int) -> float:
    """The lecture's pipeline: a PIL image and ToTensor per sample, collated by a DataLoader."""
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    dataset = datasets.MNIST(str(root), train=True, download=False, transform=transforms.ToTensor())
    loader = DataLoader(dataset, batch_size=BATCH, shuffle=True, num_workers=num_workers)
    return image_epochs.train_epoch(model, loader, LR)


def image_rows(sizes: dict[str, Any], workdir: Path) -> list[dict[str, Any]]:
    from torchvision import datasets

    root = workdir / "mnist"
    num_train, num_test = sizes["mnist"]
    image_epochs.write_synthetic_mnist(root, num_train, num_test)
    train = datasets.MNIST(str(root), train=True, download=False)
    images = train.data.unsqueeze(1).float().div(255)  # (N, 1, 28, 28), as ToTensor gives
    labels = train.targets
    steps = math.ceil(len(labels) / BATCH)
    rows = []
    for name in image_epochs.MODELS:
        times: dict[str, list[float]] = {"runner": [], "hand": [], "lecture": [], "lecture2": []}
        if image_epochs.lightning_available():
            times["lightning"] = []
        for repeat in range(sizes["image_repeats"]):
            run_dir = Path(tempfile.mkdtemp(prefix=f"runner_{name}_", dir=workdir))
            times["runner"].append(runner_image_epoch(name, root, repeat, run_dir))
            model = image_epochs.make_model(name, repeat)
            times["hand"].append(image_epochs.hand_epoch(model, images, labels, BATCH, LR))
            times["lecture"].append(lecture_epoch(image_epochs.make_model(name, repeat), root, 0))
            times["lecture2"].append(lecture_epoch(image_epochs.make_model(name, repeat), root, 2))
            if "lightning" in times:
                model, logs = image_epochs.make_model(name, repeat), Path(tempfile.mkdtemp(dir=workdir))
                seconds = image_epochs.lightning_epoch(model, images, labels, BATCH, LR, logs)
                times["lightning"].append(seconds)
            note(f"{name} repeat {repeat + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()))
        model = image_epochs.make_model(name, 0)
        optimizer = torch.optim.SGD(model.parameters(), lr=LR)
        step = training_step(model, optimizer, F.cross_entropy, images[:BATCH], labels[:BATCH])
        floor = floor_seconds(step, steps, sizes["floor_repeats"])
        label = "mlp 784-256-10" if name == "mlp" else "lenet-5"
        rows.append(
            {
                "what": f"{label}, epoch of {len(labels):,} images",
                "unit": "s/epoch",
                **{loop: statistics.median(values) for loop, values in times.items()},
                "floor": floor,
            }
        )
    return rows


# --- tiny data: the digits CNN and the fish linear model ----------------------------------------------


class EpochClock(logging.Handler):
    """When the runner logged each `epoch k/N` line. The console shows about one line a second (always
    the first and the last), so an epoch cycle is read as the time between two lines over the epochs
    between them."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.times: list[tuple[int, float]] = []  # (epoch, when its line was logged)

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith("epoch "):
            self.times.append((int(message.split()[1].split("/")[0]), record.created))


def runner_epoch_cycle(overrides: list[str], run_dir: Path) -> float:
    """Mean seconds of an epoch cycle after the first, of a run through `nnexp.runs.run.run`, console on."""
    from nnexp.runs.run import run

    logger, clock = logging.getLogger("nnexp"), EpochClock()
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(clock)
    try:
        run(image_epochs.compose(*overrides), run_dir, shown())
    finally:
        logger.removeHandler(clock)
        logger.setLevel(level)
    (first, started), (last, ended) = clock.times[0], clock.times[-1]
    return (ended - started) / (last - first)


def hand_tiny_epochs(cfg, epochs: int) -> tuple[list[float], Any]:
    """The best plain loop for the preset: its data, model, optimiser, schedule and batch size."""
    from hydra.utils import instantiate

    from nnexp.train.build import build_model

    torch.manual_seed(cfg.seed)
    data = instantiate(cfg.data, _convert_="all")

    def tensors(split):
        return (split.transform(split.inputs) if split.transform else split.inputs), split.targets

    (x, y), validation = tensors(data.train), (tensors(data.val) if data.val is not None else None)
    model = build_model(cfg.model, data.spec)
    optimizer = instantiate(cfg.optim)(model.parameters())
    scheduler = instantiate(cfg.scheduler)(optimizer) if cfg.scheduler else None
    loss_fn = F.cross_entropy if data.spec.task == "classification" else F.mse_loss
    batch_size = cfg.trainer.batch_size
    times = []
    for _ in range(epochs):
        started = time.perf_counter()
        model.train()
        order = torch.randperm(len(y))
        total = torch.zeros(())
        for start in range(0, len(y), batch_size):
            index = order[start : start + batch_size]
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(x[index]), y[index])
            loss.backward()
            optimizer.step()
            total += loss.detach() * len(index)
        shown_losses = [total.item() / len(y)]  # what a user prints each epoch
        if validation is not None:  # the runner validates every epoch when the data has a val split
            model.eval()
            with torch.inference_mode():
                shown_losses.append(loss_fn(model(validation[0]), validation[1]).item())
        if scheduler is not None:
            scheduler.step()
        times.append(time.perf_counter() - started)
    step = training_step(model, optimizer, loss_fn, x[:batch_size], y[:batch_size])
    return times, (step, math.ceil(len(y) / batch_size))


def tiny_rows(sizes: dict[str, Any], workdir: Path, fish_csv: Path) -> list[dict[str, Any]]:
    rows = []
    epochs = sizes["tiny_epochs"]
    for label, preset in TINY_PRESETS.items():
        overrides = [f"experiment={preset}", f"trainer.epochs={epochs}", "device=cpu"]
        if preset == "fish_linreg":
            overrides.append(f"data.path={fish_csv}")
        cfg = image_epochs.compose(*overrides)
        runner_times: list[float] = []
        hand_times: list[float] = []
        for repeat in range(sizes["tiny_repeats"]):
            run_dir = Path(tempfile.mkdtemp(prefix=f"runner_{preset}_", dir=workdir))
            runner_times.append(runner_epoch_cycle(overrides, run_dir))  # the first epoch warms up
            times, (step, steps) = hand_tiny_epochs(cfg, epochs)
            hand_times.append(statistics.mean(times[1:]))  # the mean, as the runner's is
            note(
                f"{label} repeat {repeat + 1}: runner {statistics.median(runner_times) * 1e3:.1f} ms, "
                f"hand {statistics.median(hand_times) * 1e3:.1f} ms per epoch"
            )
        floor = floor_seconds(step, steps, sizes["floor_repeats"] * 4)
        rows.append(
            {
                "what": f"{label} (experiment={preset}), whole epoch",
                "unit": "s/epoch",
                "runner": statistics.median(runner_times),
                "hand": statistics.median(hand_times),
                "floor": floor,
            }
        )
    return rows


# --- language models ----------------------------------------------------------------------------------


def lm_floor_tokens_per_s(model_name: str, text: Path, max_batches: int, repeats: int) -> float:
    """The preset's model and optimiser on one pre-built (B, T) batch, on the preset's threads."""
    from hydra.utils import instantiate

    from nnexp.data.text import load_text
    from nnexp.train.build import build_model

    cfg = lm_throughput.compose([f"experiment={lm_throughput.PRESETS[model_name]}", f"data.path={text}"])
    if cfg.trainer.threads:
        torch.set_num_threads(cfg.trainer.threads)
    data = load_text(**{key: value for key, value in cfg.data.items() if key != "_target_"})
    torch.manual_seed(0)
    model = build_model(cfg.model, data.spec)
    optimizer = instantiate(cfg.optim)(model.parameters())
    inputs, targets = next(iter(data.train.batches(cfg.trainer.batch_size)))  # (B, T) each

    def loss_fn(output, target):
        logits, _ = output  # (B, T, V), the state
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1))

    step = training_step(model, optimizer, loss_fn, inputs, targets, cfg.trainer.clip_grad_norm)
    seconds = floor_seconds(step, max_batches, repeats)
    return max_batches * targets.numel() / seconds


def lm_rows(sizes: dict[str, Any], workdir: Path, text: Path) -> list[dict[str, Any]]:
    rows = []
    options = sizes["lm"]
    for model_name in ("gru", "rnn"):
        with threads_kept():
            result = lm_throughput.measure(
                model_name, text, options["rounds"], options["epochs"], options["max_batches"], workdir
            )
        with threads_kept():
            floor = lm_floor_tokens_per_s(model_name, text, options["max_batches"], sizes["floor_repeats"])
        note(f"{model_name}: {result}, floor {floor:,.0f} tokens/s")
        rows.append(
            {
                "what": f"{model_name} LM (experiment={result['preset']}), batch {result['batch']}, "
                f"{result['threads']} thread(s)",
                "unit": "tokens/s",
                "runner": result["nnexp_tokens_per_s"],
                "hand": result["hand_tokens_per_s"],
                "floor": floor,
            }
        )
    return rows


# --- start-up -------------------------------------------------------------------------------------------


def startup_rows(sizes: dict[str, Any]) -> list[dict[str, Any]]:
    measured = startup.measure(sizes["startup_repeats"])
    reference = next(row for row in measured if row["what"].startswith("python -c"))
    rows = [
        {
            "what": f"start-up: `{row['what']}` (reference: `import torch`)",
            "unit": "s",
            "runner": row["median_s"],
            "hand": reference["median_s"],
            "note": f"imports: {row['heavy_imports'] or 'none of the heavy ones'}",
        }
        for row in measured
        if row is not reference
    ]
    return rows


# --- a loaded machine: the default run beside busy loops (issue 28) -----------------------------------------

BUSY_LOOPS = 4
# nnexp before issue 28: the variable nnexp now sets is removed again before torch loads (OpenMP's default:
# spin ~3 ms before sleeping), and one thread per core, torch's default.
BEFORE = (
    "import os, sys; import nnexp.cli.entry as entry; os.environ.pop('OMP_WAIT_POLICY', None); "
    "sys.argv[0] = 'nnexp'; entry.main()"
)


def _load() -> float:
    return os.getloadavg()[0]


def _timed_run(command: list[str], workdir: Path) -> tuple[float, float, str]:
    """(seconds, the 1-minute load as it started, the threads its summary.json records and why)."""
    env = {key: value for key, value in end_to_end._env().items() if key != "OMP_WAIT_POLICY"}
    scratch, load = Path(tempfile.mkdtemp(prefix="loaded_", dir=workdir)), _load()
    started = time.perf_counter()
    done = subprocess.run(
        command, cwd=scratch, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"failed ({done.returncode}): {' '.join(command)}\n{done.stderr[-3000:]}")
    summary = json.loads(next(scratch.rglob("summary.json")).read_text())["provenance"]
    return seconds, load, f"{summary['threads']}: {summary.get('threads_chosen', 'not recorded')}"


def loaded_rows(sizes: dict[str, Any], workdir: Path) -> list[dict[str, Any]]:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    variants = {
        "nnexp": [sys.executable, "-m", "nnexp"],
        "nnexp trainer.threads=null (torch's count)": [sys.executable, "-m", "nnexp", "trainer.threads=null"],
        f"before (OpenMP spin-wait, trainer.threads={cores})": [
            sys.executable, "-c", BEFORE, f"trainer.threads={cores}"
        ],
    }  # fmt: skip
    measured: dict[tuple[str, str], list[tuple[float, float, str]]] = {}

    def pairs(condition: str) -> None:
        for repeat in range(sizes["loaded_repeats"]):  # A B A B: a change in the load hits both alike
            for name, command in variants.items():
                measured.setdefault((condition, name), []).append(_timed_run(command, workdir))
                seconds, load, chosen = measured[condition, name][-1]
                said = f"{seconds:.2f} s at load {load:.2f} ({chosen})"
                note(f"loaded: {condition}, {name} {repeat + 1}: {said}")

    pairs("alone")
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(BUSY_LOOPS)]
    try:
        note(f"loaded: {BUSY_LOOPS} busy loops started; {sizes['busy_warmup_s']} s for the load to climb")
        time.sleep(sizes["busy_warmup_s"])
        pairs(f"beside {BUSY_LOOPS} busy loops")
    finally:
        for process in busy:
            process.kill()
            process.wait()
    rows = []
    median = {key: statistics.median(s for s, _, _ in runs) for key, runs in measured.items()}
    before = list(variants)[-1]
    for name in variants:
        for (condition, measured_name), runs in measured.items():
            if measured_name != name:
                continue
            seconds = median[condition, name]
            loads = ", ".join(f"{load:.2f}" for _, load, _ in runs)
            ratio = f"{seconds / median['alone', name]:.2f}x its time alone; " if condition != "alone" else ""
            if name != before:
                ratio += f"before / nnexp {median[condition, before] / seconds:.2f}x; "
            rows.append(
                {
                    "what": f"loaded: default run, {name}, {condition}",
                    "unit": "s",
                    "runner": seconds,
                    "note": f"{ratio}1-minute load {loads}; threads "
                    + " / ".join(sorted({r[2] for r in runs})),
                }
            )
    return rows


# --- the table --------------------------------------------------------------------------------------------

COLUMNS = {
    "runner": "runner",
    "hand": "hand loop",
    "floor": "floor",
    "lecture": "lecture nw=0",
    "lecture2": "lecture nw=2",
    "lightning": "Lightning defaults",
}


def time_ratio(row: dict[str, Any], slower: str, faster: str) -> float | None:
    """How many times longer `slower` takes than `faster` for the same work (rates are inverted)."""
    a, b = row.get(slower), row.get(faster)
    if not a or not b:
        return None
    return b / a if row["unit"] == "tokens/s" else a / b


RATIOS = (("runner", "hand"), ("runner", "floor"), ("lecture", "runner"), ("lightning", "runner"))


def format_rows(rows: list[dict[str, Any]]) -> str:
    header = [
        "what",
        "unit",
        *COLUMNS.values(),
        "runner / hand",
        "runner / floor",
        "lecture / runner",
        "Lightning / runner",
        "note",
    ]
    lines = ["| " + " | ".join(header) + " |", "|---|---|" + "---:|" * (len(header) - 3) + "---|"]
    for row in rows:
        unit = row.get("unit", "s/epoch")
        cells = [row["what"], unit]
        for key in COLUMNS:
            value = row.get(key)
            cells.append(
                "-" if value is None else (f"{value:,.0f}" if unit == "tokens/s" else f"{value:.3f}")
            )
        row = {**row, "unit": unit}
        for slower, faster in RATIOS:
            ratio = time_ratio(row, slower, faster)
            cells.append("-" if ratio is None else f"{ratio:.2f}x")
        cells.append(row.get("note", ""))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# --- inputs, machine description, RESULTS.md ---------------------------------------------------------


def book(workdir: Path) -> tuple[Path, str]:
    """The Time Machine from ../shared/data (or $NNEXP_DATA_ROOT); else 10,000+ characters of stand-in."""
    for folder in (Path(os.environ.get("NNEXP_DATA_ROOT", "data")), SHARED_DATA):
        if (folder / "timemachine.txt").is_file():
            return (folder / "timemachine.txt").resolve(), "The Time Machine"
    words = "the time traveller for so it will be convenient to speak of him was expounding a recondite"
    text = workdir / "timemachine.txt"
    generator = torch.Generator().manual_seed(0)
    vocabulary = words.split()
    picks = torch.randint(len(vocabulary), (4000,), generator=generator).tolist()
    text.write_text(" ".join(vocabulary[i] for i in picks) + "\n")
    return text, "a stand-in text (the book was not found)"


def fish(workdir: Path) -> tuple[Path, str]:
    """Always a synthetic fish-market CSV of 159 rows (the real one's size), written here: the suite
    depends on nothing beside the checkout."""
    return end_to_end.write_fish_csv(workdir / "Fish.csv"), "a synthetic Fish.csv of 159 rows"


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "load average " + ", ".join(f"{value:.2f}" for value in os.getloadavg())


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    gpu = f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ", no GPU used"
    return f"{platform.system()} {platform.machine()}, {cpu}, {os.cpu_count()} cores{gpu}"


def versions() -> str:
    import hydra
    import torchvision

    return (
        f"Python {platform.python_version()}, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads by default), torchvision {torchvision.__version__}, "
        f"hydra-core {hydra.__version__}"
    )


def results_section(table: str, command: str, loads: tuple[str, str], wall: float, inputs: str) -> str:
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return "\n".join(
        [
            f"## Benchmark suite, {stamp} (`benchmarks/run.py`)",
            "",
            "```bash",
            command,
            "```",
            "",
            f"- Machine: {machine()}",
            f"- Versions: {versions()}",
            f"- `uptime` before: {loads[0]}",
            f"- `uptime` after: {loads[1]}",
            f"- Inputs: {inputs}; the suite took {wall / 60:.1f} minutes",
            "",
            "Medians; ratios compare the time the same work takes (tokens/s inverted), so `runner / hand`",
            "1.05x means the runner takes 5% longer. MNIST-format rows: one epoch of training (the runner's",
            "`train_seconds`); tiny-data rows: the runner's whole epoch cycle (train, validate, metrics row,",
            "checkpoint) vs a hand loop that trains and validates; floors: forward + backward + step on one",
            "pre-built batch, as many steps as an epoch has.",
            "",
            table,
            "",
        ]
    )


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes and one repeat: a smoke check")
    parser.add_argument("--write-results", action="store_true", help=f"append a section to {RESULTS}")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=("images", "tiny", "lm", "startup", "e2e", "loaded", "presets"),
        default=("images", "tiny", "lm", "startup", "e2e"),
        help="run only these parts (default: all but loaded and presets, which take many minutes)",
    )
    parser.add_argument("--presets", nargs="+", metavar="NAME", help="--only presets: these (the lectures)")
    parser.add_argument("--presets-dry-run", action="store_true", help="--only presets: rewrite nothing")
    parser.add_argument(
        "--e2e-cases",
        nargs="+",
        choices=end_to_end.CASES,
        default=list(end_to_end.CASES),
        help="the end-to-end cases to run (default: all)",
    )
    parser.add_argument(
        "--e2e-repeats", type=int, help="interleaved pairs per end-to-end case (3; --quick 1)"
    )
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    command = "python benchmarks/run.py " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])
    )
    before, started = uptime(), time.perf_counter()
    note(f"{machine()}\n{versions()}\nuptime: {before}")
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="nnexp_suite_") as scratch:
        workdir = Path(scratch)
        text, text_note = book(workdir)
        fish_csv, fish_note = fish(workdir)
        parts = {
            "images": lambda: image_rows(sizes, workdir),
            "tiny": lambda: tiny_rows(sizes, workdir, fish_csv),
            "lm": lambda: lm_rows(sizes, workdir, text),
            "startup": lambda: startup_rows(sizes),
            "e2e": lambda: end_to_end.rows(args.e2e_cases, args.e2e_repeats or sizes["e2e_repeats"], workdir),
            "loaded": lambda: loaded_rows(sizes, workdir),
            "presets": lambda: presets.rows(
                args.presets or presets.lecture_presets(), workdir, dry_run=args.presets_dry_run
            ),
        }
        for name in args.only:
            note(f"--- {name}")
            with threads_kept():
                rows += parts[name]()
    wall = time.perf_counter() - started
    after = uptime()
    table = format_rows(rows)
    print(table)
    print(f"\n{wall:.0f} s; uptime before: {before}\nuptime after: {after}")
    if args.write_results:
        inputs = f"{fish_note}, {text_note}" + (" (--quick sizes)" if args.quick else "")
        section = results_section(table, command.strip(), (before, after), wall, inputs)
        with RESULTS.open("a") as handle:
            handle.write("\n" + section)
        note(f"appended to {RESULTS}")
    return table


if __name__ == "__main__":
    main()
