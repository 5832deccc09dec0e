"""What the pictures cost the default run (issue 26: at most 10% of its wall time; issue 28: drawing off the
critical path), in whole `nnexp` processes, for one checkout or two side by side:

    python benchmarks/drawing.py --repeats 3                          # this checkout
    git clone -q /work/main /tmp/draw_ref && git -C /tmp/draw_ref checkout -q <commit>
    python benchmarks/drawing.py --before /tmp/draw_ref --repeats 3   # and the one before, interleaved

Each checkout runs `nnexp seed=0 [OVERRIDES]` (its own package first on PYTHONPATH) twice a repeat: as it is
("on"), and with every writer of the end of the run (nnexp.look.end_of_run.DRAWN: views, pictures, curves,
page) replaced by one that does nothing ("off"), so no picture is drawn and matplotlib is never imported.
The wall time is the whole process's, from the command to its exit. Per run it prints:

- `wall`: the process's wall time, and `wall - off`: what drawing costs the user (the median of the
  repeats' "on" minus the median of their "off"), background import included;
- `drawing`: the time spent inside DRAWN's writers, timed around each call in the process (perf_counter);
  for the checkout before the change that is the views (predictions.csv and its pictures), the learning
  curves and the page; after it, the views' records, the pictures, the curves and the page;
- `pictures_time_s` from summary.json where the checkout records it;
- the load average (/proc/loadavg, 1 minute) before and after each run: above 1.5 the machine was not idle.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Run in the child: time (or switch off) DRAWN's writers when nnexp.look.end_of_run is first imported,
# so nothing (torch included) is imported before the command's own first step.
BOOT = r"""
import importlib.abc, importlib.util, json, os, sys, time
from dataclasses import fields, replace

spent, MODE = {}, os.environ["NNEXP_DRAWING_MODE"]
OFF = MODE == "off"

def timed(name, function):
    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            spent[name] = spent.get(name, 0.0) + time.perf_counter() - started
    return wrapper

def nothing(name):
    return (lambda *args, **kwargs: {}) if name == "views" else (lambda *args, **kwargs: None)

def patch(module):
    views = sys.modules.get("nnexp.look.views")  # each picture of the views, by its file name
    if views is not None and not OFF:
        safely = views._safely
        views._safely = lambda what, make: timed(f"  {what}", safely)(what, make)
    drawn = module.DRAWN
    writers = [f.name for f in fields(drawn) if callable(getattr(drawn, f.name))]
    module.DRAWN = replace(drawn, **{n: nothing(n) if OFF else timed(n, getattr(drawn, n)) for n in writers})
    if MODE == "no-background" and "training_starts" in writers:  # matplotlib imported when first drawn
        module.DRAWN = replace(module.DRAWN, training_starts=nothing("training_starts"))

class Patch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != "nnexp.look.end_of_run":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        run_module = spec.loader.exec_module
        def exec_module(module):
            run_module(module)
            patch(module)
        spec.loader.exec_module = exec_module
        return spec

sys.meta_path.insert(0, Patch())
import atexit
atexit.register(lambda: open(os.environ["NNEXP_DRAWING_TIMES"], "w").write(json.dumps(spent)))
sys.argv = ["nnexp", *sys.argv[1:]]
from nnexp.cli.entry import main
main()
"""


def load() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def one_run(checkout: Path, mode: str, overrides: list[str], scratch: Path) -> dict:
    folder = Path(tempfile.mkdtemp(dir=scratch)) / "run"
    times = folder.parent / "times.json"
    environment = {**os.environ, "PYTHONPATH": str(checkout.resolve()), "NNEXP_DRAWING_MODE": mode,
                   "NNEXP_DRAWING_TIMES": str(times)}  # fmt: skip
    load_before = load()
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", BOOT, "seed=0", *overrides, f"hydra.run.dir={folder}"],
                          cwd=folder.parent, env=environment, capture_output=True, text=True)  # fmt: skip
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{checkout} ({mode}) failed:\n{done.stderr[-3000:]}")
    summary = json.loads((folder / "summary.json").read_text())
    spent = json.loads(times.read_text()) if times.is_file() else {}
    return {"wall": wall, "load": (load_before, load()), "spent": spent,
            "pictures_time_s": summary.get("pictures_time_s"), "run_wall_time_s": summary.get("wall_time_s"),
            "pngs": sorted(path.name for path in folder.glob("*.png"))}  # fmt: skip


def main() -> None:
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=raw)
    parser.add_argument("--after", type=Path, default=Path("."), help="the checkout to measure (default: .)")
    parser.add_argument("--before", type=Path, help="a checkout to measure beside it, interleaved")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-off", action="store_true", help="skip the runs with nothing drawn")
    parser.add_argument("--no-background", action="store_true",
                        help="also run with matplotlib imported at the first picture")  # fmt: skip
    parser.add_argument("overrides", nargs="*", help="overrides of the run (default: none, the default run)")
    args = parser.parse_args()
    checkouts = {"before": args.before, "after": args.after} if args.before else {"after": args.after}
    modes = ["on"] + ([] if args.no_off else ["off"]) + (["no-background"] if args.no_background else [])
    results: dict[tuple[str, str], list[dict]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for repeat in range(args.repeats):
            for name, checkout in checkouts.items():
                for mode in modes:
                    result = one_run(checkout, mode, args.overrides, Path(scratch))
                    results.setdefault((name, mode), []).append(result)
                    drawing = _drawing(result["spent"])
                    low, high = result["load"]
                    print(f"repeat {repeat + 1} {name:6} {mode:3}: wall {result['wall']:6.2f} s, drawing "
                          f"{drawing:5.2f} s {_parts(result['spent'])}, pictures_time_s "
                          f"{result['pictures_time_s']}, load {low:.2f} -> {high:.2f}",
                          flush=True)  # fmt: skip
    print("\nmedians (seconds):")
    for name in checkouts:
        on = results[(name, "on")]
        wall = statistics.median(r["wall"] for r in on)
        drawing = statistics.median(_drawing(r["spent"]) for r in on)
        line = f"{name:6}: wall {wall:.2f}, drawing in the process {drawing:.2f} ({drawing / wall:.1%})"
        recorded = [r["pictures_time_s"] for r in on if r["pictures_time_s"] is not None]
        if recorded:
            line += f", pictures_time_s {statistics.median(recorded):.2f}"
        if (name, "off") in results:
            off = statistics.median(r["wall"] for r in results[(name, "off")])
            line += f", nothing drawn {off:.2f}, wall - off {wall - off:.2f} ({(wall - off) / wall:.1%})"
        if (name, "no-background") in results:
            later = results[(name, "no-background")]
            wall_later = statistics.median(r["wall"] for r in later)
            line += (f", imported at the first picture: wall {wall_later:.2f}, "
                     f"drawing {statistics.median(_drawing(r['spent']) for r in later):.2f}")  # fmt: skip
        runs = [r for mode in modes for r in results.get((name, mode), [])]
        loads = [value for r in runs for value in r["load"]]
        line += f"; load {min(loads):.2f}-{max(loads):.2f}" + (" (NOT idle)" if max(loads) > 1.5 else "")
        print(line)
        print(f"        pictures: {', '.join(on[-1]['pngs'])}")
        names = sorted({name for r in on for name in r["spent"] if name.startswith(" ")})
        medians = {name: statistics.median(r["spent"].get(name, 0.0) for r in on) for name in names}
        each = [f"{name.strip()} {seconds:.2f}" for name, seconds in medians.items()]
        if each:
            print(f"        each view (median): {', '.join(each)}")
        writers = sorted({name for r in on for name in r["spent"] if not name.startswith(" ")})
        each = [f"{name} {statistics.median(r['spent'].get(name, 0.0) for r in on):.2f}" for name in writers]
        if each:  # the learning curves and the page are writers of their own, beside the views' pictures
            print(f"        each writer (median): {', '.join(each)}")


def _drawing(spent: dict[str, float]) -> float:
    """The time inside DRAWN's writers (the pictures' own times, indented, are parts of it)."""
    return sum(seconds for name, seconds in spent.items() if not name.startswith(" "))


def _parts(spent: dict[str, float]) -> str:
    parts = [f"{name} {seconds:.2f}" for name, seconds in spent.items() if seconds >= 0.005]
    return "(" + ", ".join(parts) + ")"


if __name__ == "__main__":
    main()
