"""End to end (issue 17): the whole-process wall time of `nnexp` against a hand-written script doing the
same training and printing the same final metrics, nothing saved (benchmarks/hand/).

    python benchmarks/end_to_end.py --repeats 3             # every case, pairs interleaved A B A B
    python benchmarks/end_to_end.py --only seed004 sweep    # some of them
    python benchmarks/run.py --only e2e --e2e-repeats 3     # the same, as a section of the suite

Cases and their targets (ratios `nnexp / hand`, medians of the pairs):
(a) default: `nnexp` vs hand/digits_mlp.py, <= 1.15x;
(b) seed004: seed 004's long run (digits, full batch, SGD momentum 0.9, lr 0.001, tanh 64, 2,000
    epochs), <= 1.2x; seed004_log100: the same with `trainer.log_every_n_epochs=100` (metrics.csv rows
    every 100 epochs), to show what that switch buys;
(c) fish: `experiment=fish_linreg` on a synthetic fish CSV this benchmark writes, whole process
    (the per-epoch target, <= 1.5x, is the suite's "tiny" section);
(d) sweep: `nnexp -m experiment=digits_mlp seed=0,1,2,3,4` vs five hand scripts one after another,
    <= 0.35x;
(t) template: `nnexp` vs the same job as a lightning-hydra-template project runs it (template/train.py:
    its flow, default callbacks and config tree), < 1x; skipped without Lightning (`pip install -e .[bench]`);
(e) smoke: `debug=smoke` on every preset, experiments/lectures/ included (images with data.synthetic=true,
    files on stand-ins this benchmark writes), each <= 15 s.

Every nnexp command runs with its default outputs on (metrics.csv, summary, checkpoint, plots) in a
scratch folder; measure on an idle machine (`uptime` load < 0.5).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCHMARKS = Path(__file__).resolve().parent
HAND = BENCHMARKS / "hand"
EXPERIMENTS = BENCHMARKS.parent / "experiments"
NNEXP = [sys.executable, "-m", "nnexp"]
PYTHON = [sys.executable]

SEED004 = ["model.hidden=[64]", "model.dropout=0", "model.activation=tanh", "optim=sgd", "optim.lr=0.001",
           "optim.momentum=0.9", "trainer.batch_size=full", "trainer.epochs=2000"]  # fmt: skip
SEED004_HAND = ["--hidden", "64", "--dropout", "0", "--activation", "tanh", "--optim", "sgd", "--lr", "0.001",
                "--momentum", "0.9", "--batch-size", "full", "--epochs", "2000"]  # fmt: skip
# experiment=digits_mlp
DIGITS_MLP_HAND = ["--hidden", "128", "--dropout", "0", "--epochs", "20", "--batch-size", "64"]
SWEEP_SEEDS = range(5)
TARGETS = {"default": 1.15, "seed004": 1.2, "sweep": 0.35, "template": 1.0}  # issue 28's (sweep, template)
NOTES = {"seed004_log100": "seed004 with a metrics row every 100 epochs"}
OTHER = {"template": "; hand = benchmarks/template/train.py (Lightning, the template's flow and callbacks)"}
SMOKE_LIMIT_S = 15.0


def note(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def write_fish_csv(path: Path, rows: int = 159) -> Path:
    """A fish-market-shaped CSV (Weight roughly linear in Height and Width): nnexp never reads ../shared."""
    import random

    rng = random.Random(0)
    lines = ["Species,Weight,Length1,Length2,Length3,Height,Width"]
    for _ in range(rows):
        height, width, length = rng.uniform(2, 18), rng.uniform(1, 8), rng.uniform(10, 60)
        weight = 30 * height + 90 * width - 250 + rng.gauss(0, 40)
        lines.append(
            f"Bream,{weight:.1f},{length:.1f},{length + 2:.1f},{length + 4:.1f},{height:.4f},{width:.4f}"
        )
    path.write_text("\n".join(lines) + "\n")
    return path


def write_text(path: Path) -> Path:
    """A stand-in for The Time Machine, 24,000 characters of its words, for the language-model smoke runs."""
    import random

    sentence = "the time traveller for so it will be convenient to speak of him was expounding a recondite"
    words = sentence.split(" ")
    rng = random.Random(0)
    path.write_text(" ".join(rng.choice(words) for _ in range(4000)) + "\n")
    return path


def timed(commands: list[list[str]], cwd: Path) -> float:
    """Seconds for the commands, one after another, as whole processes; a failure stops the benchmark."""
    started = time.perf_counter()
    for command in commands:
        result = subprocess.run(
            command, cwd=cwd, capture_output=True, text=True, env=_env(), stdin=subprocess.DEVNULL
        )
        if result.returncode != 0:
            raise SystemExit(f"failed ({result.returncode}): {' '.join(command)}\n{result.stderr[-3000:]}")
    return time.perf_counter() - started


def _env() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "HYDRA_FULL_ERROR"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(BENCHMARKS.parent), env.get("PYTHONPATH")]))
    return env


def pairs(workdir: Path, fish_csv: Path) -> dict[str, tuple[list[list[str]], list[list[str]]]]:
    """name -> (the nnexp commands, the hand-written scripts' commands)."""
    digits = [*PYTHON, str(HAND / "digits_mlp.py")]
    return {
        "default": ([NNEXP], [digits]),
        "seed004": ([[*NNEXP, *SEED004]], [[*digits, *SEED004_HAND]]),
        "seed004_log100": (
            [[*NNEXP, *SEED004, "trainer.log_every_n_epochs=100"]],
            [[*digits, *SEED004_HAND]],
        ),
        "fish": (
            [[*NNEXP, "experiment=fish_linreg", f"data.path={fish_csv}"]],
            [[*PYTHON, str(HAND / "fish_linreg.py"), str(fish_csv)]],
        ),
        "sweep": (
            [[*NNEXP, "-m", "experiment=digits_mlp", "seed=" + ",".join(map(str, SWEEP_SEEDS))]],
            [[*digits, *DIGITS_MLP_HAND, "--seed", str(seed)] for seed in SWEEP_SEEDS],
        ),
        "template": ([NNEXP], [[*PYTHON, str(BENCHMARKS / "template" / "train.py")]]),
    }


def pair_rows(names: list[str], repeats: int, workdir: Path, fish_csv: Path) -> list[dict[str, Any]]:
    rows = []
    for name, (runner, hand) in pairs(workdir, fish_csv).items():
        if name not in names:
            continue
        if name == "template" and importlib.util.find_spec("lightning") is None:
            note("e2e template: skipped, Lightning is not installed (pip install -e .[bench])")
            continue
        times: dict[str, list[float]] = {"runner": [], "hand": []}
        for repeat in range(repeats):  # A B A B: a change in the machine's load hits both alike
            scratch = Path(tempfile.mkdtemp(prefix=f"e2e_{name}_", dir=workdir))
            times["runner"].append(timed(runner, scratch))
            times["hand"].append(timed(hand, scratch))
            runner_s, hand_s = times["runner"][-1], times["hand"][-1]
            note(f"e2e {name} repeat {repeat + 1}: nnexp {runner_s:.2f} s, hand {hand_s:.2f} s")
        runner_s, hand_s = statistics.median(times["runner"]), statistics.median(times["hand"])
        per_job = ""
        if name == "sweep":
            jobs = len(SWEEP_SEEDS)
            per_job = f"; per job: nnexp {runner_s / jobs:.2f} s, hand {hand_s / jobs:.2f} s"
        target = TARGETS.get(name)
        rows.append(
            {
                "what": f"e2e ({name}): `{' '.join(map(_shown, runner[0][3:])) or 'nnexp'}`",
                "unit": "s",
                "runner": runner_s,
                "hand": hand_s,
                "note": (f"target <= {target}x" if target else NOTES.get(name, "whole process"))
                + per_job
                + OTHER.get(name, ""),
            }
        )
    return rows


def smoke_overrides(preset: str, stand_ins: dict[str, Path]) -> tuple[list[str], bool]:
    """The overrides that run `preset` in smoke mode on a stand-in for data that needs a download or a
    file, and whether the preset is itself a sweep (read from its composed config, as the tests do)."""
    from hydra import compose, initialize_config_dir

    from nnexp.cli.hydra_hooks import register_resolvers
    from nnexp.paths import CONFIG_DIR

    register_resolvers()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("config", overrides=[f"experiment={preset}"], return_hydra_config=True)
    overrides = [f"experiment={preset}", "debug=smoke"]
    target, data = str(cfg.data._target_), cfg.data
    features = list(data.get("features") or []) if ".tabular." in target else []
    if ".images." in target:
        overrides.append("data.synthetic=true")
    elif ".text." in target:
        overrides.append(f"data.path={stand_ins['text']}")
    elif features == ["x"]:  # seed 004's curve fits: nnexp.data.curve's file
        overrides.append(f"data.path={stand_ins['curve']}")
    elif features == ["x1", "x2", "x3", "x4"]:  # seed 001's one-example lesson
        overrides.append(f"data.path={stand_ins['one_row']}")
    elif ".tabular." in target:
        overrides.append(f"data.path={stand_ins['fish']}")
    return overrides, str(cfg.hydra.mode) == "RunMode.MULTIRUN"


def smoke_rows(repeats: int, workdir: Path, fish_csv: Path, text: Path) -> list[dict[str, Any]]:
    from nnexp.data.curve import write_curve_csv

    one_row = workdir / "one_example.csv"
    one_row.write_text("x1,x2,x3,x4,y1,y2\n0.8,0.4,0.4,0.2,1,0\n")  # seed 001's one training example
    curve = write_curve_csv(workdir / "curve.csv")
    stand_ins = {"fish": fish_csv, "text": text, "curve": curve, "one_row": one_row}
    rows = []
    for path in sorted(EXPERIMENTS.rglob("*.yaml")):
        preset = path.relative_to(EXPERIMENTS).with_suffix("").as_posix()
        overrides, sweep = smoke_overrides(preset, stand_ins)
        command = [*NNEXP, *(["-m"] if sweep else []), *overrides]
        times = [
            timed([command], Path(tempfile.mkdtemp(prefix=f"smoke_{path.stem}_", dir=workdir)))
            for _ in range(repeats)
        ]
        seconds = statistics.median(times)
        verdict = "ok" if seconds <= SMOKE_LIMIT_S else "OVER"
        note(f"smoke {preset}: {seconds:.2f} s")
        rows.append(
            {
                "what": f"smoke: `nnexp {'-m ' if sweep else ''}{' '.join(map(_shown, overrides))}`",
                "unit": "s",
                "runner": seconds,
                "note": f"{verdict} (target <= {SMOKE_LIMIT_S:g} s"
                + (", a sweep of every variant)" if sweep else ")"),
            }
        )
    return rows


def _shown(override: str) -> str:
    """data.path=/tmp/.../Fish.csv -> data.path=Fish.csv: the scratch folder says nothing."""
    key, _, value = override.partition("=")
    return f"{key}={Path(value).name}" if key == "data.path" else override


CASES = ("default", "seed004", "seed004_log100", "fish", "sweep", "template", "smoke")


def rows(names: list[str], repeats: int, workdir: Path) -> list[dict[str, Any]]:
    fish_csv = write_fish_csv(workdir / "Fish.csv")
    text = write_text(workdir / "timemachine.txt")
    found = pair_rows([name for name in names if name != "smoke"], repeats, workdir, fish_csv)
    if "smoke" in names:
        found += smoke_rows(repeats, workdir, fish_csv, text)
    return found


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="interleaved pairs per case (default 3)")
    parser.add_argument("--only", nargs="+", choices=CASES, default=list(CASES), help="these cases only")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="nnexp_e2e_") as scratch:
        for row in rows(args.only, args.repeats, Path(scratch)):
            ratio = f"{row['runner'] / row['hand']:.2f}x" if row.get("hand") else "-"
            hand = f"{row['hand']:.2f} s" if row.get("hand") else "-"
            print(f"{row['what']}: nnexp {row['runner']:.2f} s, hand {hand}, {ratio}; {row['note']}")


if __name__ == "__main__":
    main()
