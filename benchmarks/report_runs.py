"""`nnexp-report SWEEP --html --plot` on a sweep of many runs (issue 23: 300 runs took 52 s and 748 MB).

    python benchmarks/report_runs.py [--runs 300] [--epochs 30] [--repeats 3] [--keep DIR] [--before DIR]

Writes the sweep's run folders directly as files, in the format a real run writes them (summary.json,
metrics.csv with the per-layer columns, .hydra/config.yaml and overrides.yaml, report.html), instead of
training them: `write_sweep` below. Then runs the installed `nnexp-report` on it in fresh processes, as a
user does, and prints the wall time, the peak memory of the process (max RSS) and what it wrote on stderr.
`--before DIR` also times the nnexp package in DIR (e.g. `git archive HEAD nnexp | tar -x -C DIR`), the
two alternating, so a change in the machine's load hits both alike. Not part of the unit tests; timings
are never asserted.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPORT = [shutil.which("nnexp-report")] if shutil.which("nnexp-report") else [
    sys.executable, "-c", "from nnexp.look.report import console_main; console_main()"]  # fmt: skip

# The default run's config, as Hydra saves it (shortened to what a report never reads past).
CONFIG = """seed: {seed}
objective: null
outputs:
  predictions: test
  views: true
data:
  _target_: nnexp.data.digits.load_digits
  test_fraction: 0.2
  split_seed: 1234
  val_fraction: 0.1
  scale: true
model:
  _target_: nnexp.models.mlp.MLP
  hidden:
  - {hidden}
  - {hidden}
  activation: relu
optim:
  _target_: torch.optim.Adam
  lr: {lr}
trainer:
  epochs: {epochs}
  batch_size: 64
"""
METRIC_COLUMNS = ["epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "train_seconds",
                  "grad_norm/layers.1", "grad_norm/layers.4", "grad_norm/layers.7", "dead_relu/layers.2",
                  "dead_relu/layers.5", "seconds"]  # fmt: skip


def write_run(folder: Path, overrides: list[str], lr: float, hidden: int, seed: int, epochs: int) -> Path:
    """One run folder as `nnexp` leaves a completed run (less the PNG views, which a report never reads)."""
    rng = random.Random(hash((lr, hidden, seed)))
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text("".join(f"- {line}\n" for line in overrides))
    config = CONFIG.format(seed=seed, hidden=hidden, lr=lr, epochs=epochs)
    (folder / ".hydra" / "config.yaml").write_text(config)
    rate = min(0.9, 30 * lr) * (0.7 + hidden / 1000)  # how fast this variant learns
    ceiling = 0.90 + 0.08 * rng.random()
    rows = []
    for epoch in range(1, epochs + 1):
        progress = 1 - math.exp(-rate * epoch)
        val_accuracy = 0.1 + (ceiling - 0.1) * progress + rng.gauss(0, 0.005)
        train_loss = 2.3 * math.exp(-rate * epoch) + 0.02 + rng.gauss(0, 0.01)
        val_loss = 2.3 * math.exp(-rate * epoch) + 0.08 + rng.gauss(0, 0.01)
        rows.append([epoch, train_loss, min(1.0, val_accuracy + 0.02), val_loss, val_accuracy, lr, 0.3,
                     0.3, 0.3, 0.7, 0.07, 0.14, 0.33])  # fmt: skip
    lines = [",".join(METRIC_COLUMNS)] + [",".join(f"{value:.10g}" for value in row) for row in rows]
    (folder / "metrics.csv").write_text("\n".join(lines) + "\n")
    last = dict(zip(METRIC_COLUMNS, rows[-1], strict=True))
    final = {key: last[key] for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy")}
    final.update(test_loss=last["val_loss"] + 0.01, test_accuracy=last["val_accuracy"] - 0.005)
    best = {"val_loss": min(row[3] for row in rows), "val_accuracy": max(row[4] for row in rows),
            "train_loss": min(row[1] for row in rows),
            "train_accuracy": max(row[2] for row in rows)}  # fmt: skip
    summary = {
        "status": "completed", "seed": seed, "started_at": "2026-12-07T05:24:56+0000",
        "nnexp_version": "0.1.0", "data": {"name": "digits", "task": "classification"}, "model": "MLP",
        "num_parameters": 64 * hidden + hidden * hidden + 10 * hidden, "loss": "cross_entropy",
        "optimizer": "Adam", "device": "cpu", "diagnostics": [], "epochs_completed": epochs,
        "train_time_s": 0.3 * epochs, "metrics": {"final": final, "best": best},
        "baselines": [{"name": "chance", "test_accuracy": 0.1},
                      {"name": "logistic regression", "test_accuracy": 0.9722, "test_loss": 0.1566}],
        "checkpoint": "checkpoint.pt", "wall_time_s": 0.35 * epochs + 4,
    }  # fmt: skip
    (folder / "summary.json").write_text(json.dumps(summary, indent=2))
    # Every run writes its own page; the sweep page links to it. Its content is not read by the report.
    (folder / "report.html").write_text('<!DOCTYPE html>\n<meta name="generator" content="nnexp">\n')
    return folder


def write_sweep(root: Path, runs: int = 300, epochs: int = 30) -> Path:
    """A sweep of `runs` jobs (`nnexp -m optim.lr=... model.hidden=... seed=...`), numbered as Hydra does."""
    points = [(lr, hidden, seed) for lr in (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0, 3.0)
              for hidden in (32, 64, 128, 256, 512) for seed in range(6)][:runs]  # fmt: skip
    while len(points) < runs:  # more than 300 asked for: more seeds
        points.append((1e-3, 64, len(points)))
    root.mkdir(parents=True, exist_ok=True)
    (root / "multirun.yaml").write_text("hydra:\n  mode: MULTIRUN\n")
    for index, (lr, hidden, seed) in enumerate(points):
        overrides = [f"optim.lr={lr}", f"model.hidden=[{hidden},{hidden}]", f"seed={seed}"]
        write_run(root / str(index), overrides, lr, hidden, seed, epochs)
    return root


def timed(command: list[str], python_path: Path | None = None) -> tuple[float, float, str]:
    """(wall seconds, the peak resident memory of the process in MB, its stderr)."""
    environment = dict(os.environ)
    if python_path is not None:
        environment["PYTHONPATH"] = str(python_path)
    # GNU time's %M: this process's own peak, where RUSAGE_CHILDREN gives the largest child so far.
    measure = ["/usr/bin/time", "-f", "%M", "-o"] if Path("/usr/bin/time").exists() else []
    with tempfile.NamedTemporaryFile("r") as peak:
        started = time.perf_counter()
        done = subprocess.run([*measure, *([peak.name] if measure else []), *command], capture_output=True,
                              text=True, check=False, env=environment)  # fmt: skip
        seconds = time.perf_counter() - started
        kilobytes = peak.read().strip().splitlines()[-1] if measure else ""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    peak_mb = int(kilobytes) / 1024 if kilobytes.isdigit() else usage / 1024
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return seconds, peak_mb, done.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="write the sweep here and keep it (default: a temp folder)")
    parser.add_argument("--before", type=Path, help="a folder holding an earlier nnexp package to compare")
    options = parser.parse_args()
    folder = options.keep or Path(tempfile.mkdtemp(prefix="nnexp-report-bench-"))
    sweep = folder / "multirun" / "2026-12-07" / "10-00-00"
    if not sweep.is_dir():
        started = time.perf_counter()
        write_sweep(sweep, options.runs, options.epochs)
        print(f"wrote {options.runs} run folders in {time.perf_counter() - started:.1f} s: {sweep}")
    print(f"load average before: {os.getloadavg()}", flush=True)
    versions: dict[str, Path | None] = {"this checkout": None}
    if options.before:
        versions[f"before ({options.before})"] = options.before
    walls: dict[str, list[float]] = {name: [] for name in versions}
    for repeat in range(options.repeats):
        for name, python_path in versions.items():
            seconds, peak_mb, stderr = timed([*REPORT, str(sweep), "--html", "--plot"], python_path)
            walls[name].append(seconds)
            print(f"repeat {repeat + 1}, {name}: {seconds:.2f} s, peak RSS {peak_mb:.0f} MB, "
                  f"stderr {len(stderr.splitlines())} lines", flush=True)  # fmt: skip
            for line in stderr.splitlines()[:6]:
                print(f"    stderr: {line[:150]}")
    for name, seconds in walls.items():
        print(f"{name}: median {statistics.median(seconds):.2f} s over {len(seconds)}")
    print(f"load average after: {os.getloadavg()}")
    if options.keep is None:
        shutil.rmtree(folder)


if __name__ == "__main__":
    main()
