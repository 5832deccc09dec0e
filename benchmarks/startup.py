"""How long a user waits before anything trains: `nnexp --help`, `nnexp --cfg job`, the first step.

    python benchmarks/startup.py [--repeats 5]

Compares with `python -c "import torch"`, and lists which heavy modules each command imports
(`python -X importtime`), since the ones a config does not need must not load.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

NNEXP = [sys.executable, "-m", "nnexp"]
HEAVY = ("torch", "torchvision", "pandas", "sklearn", "matplotlib")


def wall_time(command: list[str], cwd: Path) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True, capture_output=True, env=_plain_env())
    return time.perf_counter() - started


def heavy_imports(args: list[str], cwd: Path) -> list[str]:
    """The heavy top-level modules `nnexp ARGS` imports."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "nnexp", *args],
        cwd=cwd, capture_output=True, text=True, env=_plain_env(),
    )  # fmt: skip
    imported = set(re.findall(r"\|\s*(\w+)\s*$", result.stderr, flags=re.M))
    return [name for name in HEAVY if name in imported]


def time_to_first_step(args: list[str], cwd: Path) -> float:
    """From launching the process to the log line that follows building the model (the loop starts next)."""
    started = datetime.now()
    subprocess.run([*NNEXP, *args], cwd=cwd, check=True, capture_output=True, env=_plain_env())
    [log] = sorted(cwd.glob("outputs/*/*/nnexp.log"), key=os.path.getmtime)[-1:]
    for line in log.read_text().splitlines():
        if "] optimizer:" in line:
            stamp = datetime.strptime(line[1:24], "%Y-%m-%d %H:%M:%S,%f")
            return (stamp - started).total_seconds()
    raise RuntimeError(f"no optimizer line in {log}")


def _plain_env() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if key != "HYDRA_FULL_ERROR"}


def measure(repeats: int = 5) -> list[dict[str, object]]:
    first_run = ["trainer.epochs=1", "trainer.max_batches_per_epoch=1"]
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        cwd = Path(scratch)
        commands = {
            'python -c "import torch"': [sys.executable, "-c", "import torch"],
            "nnexp --help": [*NNEXP, "--help"],
            "nnexp --cfg job": [*NNEXP, "--cfg", "job"],
        }
        for name, command in commands.items():
            times = [wall_time(command, cwd) for _ in range(repeats)]
            args = command[3:] if command[:3] == NNEXP else None
            rows.append({
                "what": name,
                "median_s": statistics.median(times),
                "heavy_imports": ", ".join(heavy_imports(args, cwd)) if args is not None else "torch",
            })  # fmt: skip
        for data in ("digits", "fish"):
            args = [f"data={data}", *first_run]
            if data == "fish":
                fish = cwd / "Fish.csv"
                rows_text = "\n".join(f"Bream,{100 + i},1,2,3,{1 + i % 7},{2 + i % 5}" for i in range(60))
                fish.write_text("Species,Weight,Length1,Length2,Length3,Height,Width\n" + rows_text + "\n")
                args += [f"data.path={fish}", "model=linear"]
            times = [time_to_first_step(args, cwd) for _ in range(max(1, repeats // 2))]
            rows.append({
                "what": f"first training step, data={data}",
                "median_s": statistics.median(times),
                "heavy_imports": ", ".join(heavy_imports(args, cwd)),
            })  # fmt: skip
    return rows


def format_table(rows: list[dict[str, object]]) -> str:
    lines = ["| what | median s | heavy modules imported |", "|---|---:|---|"]
    lines += [f"| `{r['what']}` | {r['median_s']:.2f} | {r['heavy_imports'] or '-'} |" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict[str, object]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    rows = measure(parser.parse_args(argv).repeats)
    print(format_table(rows))
    return rows


if __name__ == "__main__":
    main()
