"""What the views a run writes at its end (predictions.csv, confusion matrix, pictures) cost a run.

    python benchmarks/views_cost.py [--pairs 5] [--mnist-pairs 3]

Runs `nnexp` as a user does, in fresh processes, with `outputs.views=true` and `false` interleaved
(on, off, on, off, ...), so a change in the machine's load hits both alike; reports the median wall
and CPU time (user + system, which other processes' load sways less) of each and their ratio. Two
runs: the default (MLP on the digits, 30 epochs) and one epoch of the MNIST MLP benchmark
(784-256-10, batch 256, SGD) on synthetic MNIST-shaped images (`data.synthetic=true`: 55,000
training and 10,000 test images). Not part of the unit tests.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NNEXP = [shutil.which("nnexp")] if shutil.which("nnexp") else [sys.executable, "-m", "nnexp"]
RUNS = {
    "default run (digits MLP, 30 epochs)": [],
    "MNIST MLP epoch (synthetic)": [
        "data=mnist",
        "data.synthetic=true",
        "model=mlp",
        "model.hidden=[256]",
        "optim=sgd",
        "optim.lr=0.1",
        "trainer.epochs=1",
        "trainer.batch_size=256",
    ],
}


def timed_run(args: list[str], folder: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds: user + system of the nnexp process, less swayed by other load)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run([*NNEXP, *args], cwd=folder, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"nnexp {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return seconds, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5, help="on/off pairs of the default run")
    parser.add_argument("--mnist-pairs", type=int, default=3, help="on/off pairs of the MNIST epoch")
    options = parser.parse_args()
    print(f"load average before: {os.getloadavg()}", flush=True)
    for (name, args), pairs in zip(RUNS.items(), (options.pairs, options.mnist_pairs), strict=True):
        times: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
        with tempfile.TemporaryDirectory() as folder:
            for _ in range(pairs):
                for views in (True, False):
                    switch = f"outputs.views={str(views).lower()}"
                    times[views].append(timed_run([*args, switch], Path(folder)))
        for kind, at in (("wall", 0), ("CPU", 1)):
            on = statistics.median(t[at] for t in times[True])
            off = statistics.median(t[at] for t in times[False])
            print(
                f"{name}, {kind}: views on {on:.2f} s, off {off:.2f} s (medians of {pairs}), "
                f"on/off {on / off:.3f}; on {[round(t[at], 2) for t in times[True]]}, "
                f"off {[round(t[at], 2) for t in times[False]]}",
                flush=True,
            )
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
