"""Do two checkouts of nnexp train to the same numbers? A check for refactors (issue 24), run on demand.

Trains the reference runs with each checkout (its own package and configs, put first on PYTHONPATH)
and compares their metrics.csv column by column, times excepted:

    python benchmarks/same_numbers.py /path/to/old/checkout . --data ../shared/data

The fish and language-model runs need Fish.csv and timemachine.txt in --data; without it they are
skipped, saying so. Prints one line per run and exits 1 when any differs.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
from pathlib import Path

TIME_COLUMNS = {"seconds", "train_seconds", "wall_time_s", "time"}  # and every rate, *_per_s


def reference_runs(data: Path | None) -> dict[str, list[str]]:
    runs = {"default": [], "digits_cnn": ["experiment=digits_cnn", "trainer.epochs=2"]}
    if data is not None and (data / "Fish.csv").is_file():
        runs["fish_linreg"] = ["experiment=fish_linreg", f"data.path={data / 'Fish.csv'}"]
    if data is not None and (data / "timemachine.txt").is_file():
        runs["time_machine_rnn"] = [
            "experiment=time_machine_rnn", "trainer.epochs=2", f"data.path={data / 'timemachine.txt'}"
        ]  # fmt: skip
    return runs


def train(checkout: Path, overrides: list[str], folder: Path) -> list[dict[str, str]]:
    environment = {**os.environ, "PYTHONPATH": str(checkout.resolve())}
    command = [sys.executable, "-m", "nnexp", "seed=0", *overrides, f"hydra.run.dir={folder}"]
    done = subprocess.run(command, cwd=folder.parent, env=environment, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{checkout}: nnexp {' '.join(overrides)} failed: {done.stderr.strip()[-300:]}")
    with open(folder / "metrics.csv", newline="") as file:
        return [
            {k: v for k, v in row.items() if k not in TIME_COLUMNS and not k.endswith("_per_s")}
            for row in csv.DictReader(file)
        ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--data", type=Path, default=None, help="folder with Fish.csv and timemachine.txt")
    args = parser.parse_args()
    differ = 0
    with tempfile.TemporaryDirectory() as scratch:
        for name, overrides in reference_runs(args.data).items():
            rows = [train(checkout, overrides, Path(scratch) / f"{name}-{side}")
                    for side, checkout in (("before", args.before), ("after", args.after))]  # fmt: skip
            same = rows[0] == rows[1]
            differ += not same
            print(f"{name}: {len(rows[0])} rows, {'identical' if same else 'DIFFERENT'} (times excepted)")
    if args.data is None or not (args.data / "Fish.csv").is_file():
        print("fish_linreg and time_machine_rnn skipped: give --data with Fish.csv and timemachine.txt")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
