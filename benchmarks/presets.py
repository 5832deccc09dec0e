"""Re-measure the presets and rewrite the times they state (issue 28, "True times").

    python benchmarks/presets.py                          # every lecture preset: run, time, rewrite
    python benchmarks/presets.py --only digits_fnn_tanh   # one preset (NAME, else lectures/NAME)
    python benchmarks/presets.py --dry-run                # run, time, print the new lines, write nothing
    python benchmarks/run.py --only presets               # the same, as a section of the suite

Each preset runs as a user runs it, a whole `nnexp experiment=NAME` process in a scratch folder, with the
stand-in its data needs written the way benchmarks/end_to_end.py writes them (a 159-row fish CSV, the
curve file, the one-row file, `data.synthetic=true` where MNIST or Fashion-MNIST would be downloaded).
The 1-minute load average is read before and after each run. The load after a run also holds the run's own
threads (each adds up to 1, climbing as 1 - exp(-t / 60 s)), so that share is taken off: the load other
work put on the machine is the larger of the load before and the load after less the run's own share.
Above 1.5 the time is written as "measured at load L, not idle", never as an idle time.

The stated time is one marked line, rewritten in place and nowhere else:
- in the preset's header comment, `# time: ...` (added at the end of the header when it has none);
- in docs/lectures.md, `<!-- time:NAME -->...<!-- /time -->` (a preset without one there is left alone).
A rewrite that would change a config value is refused (the YAML is parsed before and after).
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCHMARKS = Path(__file__).resolve().parent
ROOT = BENCHMARKS.parent
EXPERIMENTS = ROOT / "experiments"
LECTURES_MD = ROOT / "docs" / "lectures.md"
IDLE_LOAD = 1.5  # on 2 cores: above it, other work takes most of a core
NOT_MEASURED = "not measured idle yet"

_YAML_TIME = re.compile(r"^# time: .*$")
_MD_TIME = re.compile(r"<!-- time:(?P<name>[\w/]+) -->(?P<text>.*?)<!-- /time -->")


@dataclass(frozen=True)
class Measurement:
    preset: str  # the name after experiment=, e.g. lectures/digits_fnn_tanh
    command: str  # as a user types it, data files by their base name
    seconds: float
    load_before: float
    load_after: float
    own_load: float  # the share of load_after that the run's own threads account for
    date: str  # YYYY-MM-DD, UTC
    cores: int

    @property
    def load(self) -> float:
        """The load other work put on the machine while the run ran."""
        return max(self.load_before, self.load_after - self.own_load)

    @property
    def idle(self) -> bool:
        return self.load <= IDLE_LOAD

    @property
    def shown_load(self) -> str:
        """The load to one decimal, rounded away from the idle line: 1.54 is "1.6", never "1.5, not idle"."""
        tenths = round(self.load * 10, 6)  # 2.7000000000000006 is 2.7
        return f"{(math.floor(tenths) if self.idle else math.ceil(tenths)) / 10:.1f}"


# --- what is written ------------------------------------------------------------------------------------


def duration(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min"


def yaml_line(measured: Measurement | None, preset: str = "") -> str:
    """The `# time:` line of a preset's header."""
    if measured is None:
        return (
            f"# time: {NOT_MEASURED} (`python benchmarks/presets.py --only {short_name(preset)}` measures it)"
        )
    loads = f"load {measured.load_before:.1f} before, {measured.load_after:.1f} after"
    where = f"{measured.date}, {measured.cores} cores, {loads}: `{measured.command}`"
    if measured.idle:
        return f"# time: ~{duration(measured.seconds)} (measured idle {where})"
    return f"# time: {duration(measured.seconds)}, measured at load {measured.shown_load}, not idle ({where})"


def markdown_text(measured: Measurement | None) -> str:
    """What stands between a preset's markers in docs/lectures.md."""
    if measured is None:
        return NOT_MEASURED
    if measured.idle:
        return f"~{duration(measured.seconds)} (idle, load {measured.shown_load}, {measured.date})"
    return f"{duration(measured.seconds)}, measured at load {measured.shown_load}, not idle ({measured.date})"


def rewrite_header(text: str, line: str) -> str:
    """`text` (a preset's YAML) with its header's `# time:` line replaced by `line`, or `line` added at the
    end of the header comment. Only comments change: a rewrite that changes a value is refused."""
    import yaml

    lines = text.splitlines(keepends=True)
    end = next((i for i, each in enumerate(lines) if not each.startswith("#")), len(lines))
    found = [i for i in range(end) if _YAML_TIME.match(lines[i].rstrip("\n"))]
    if found:
        lines[found[0]] = line + "\n"
        for extra in reversed(found[1:]):  # one stated time a preset
            del lines[extra]
    else:
        lines.insert(end, line + "\n")
    rewritten = "".join(lines)
    if yaml.safe_load(rewritten) != yaml.safe_load(text):
        raise ValueError(f"rewriting the time line would change a value: {line!r}")
    return rewritten


def rewrite_markdown(text: str, preset: str, new: str) -> tuple[str, int]:
    """`text` with every `<!-- time:PRESET -->...<!-- /time -->` holding `new`; and how many there were."""
    count = 0

    def replace(match: re.Match[str]) -> str:
        nonlocal count
        if match["name"] != preset:
            return match[0]
        count += 1
        return f"<!-- time:{preset} -->{new}<!-- /time -->"

    return _MD_TIME.sub(replace, text), count


def markers(text: str) -> dict[str, str]:
    """{preset: the time its marker states} in a Markdown text."""
    return {match["name"]: match["text"] for match in _MD_TIME.finditer(text)}


def header_time(text: str) -> str | None:
    """The `# time:` line of a preset's header, or None."""
    for line in text.splitlines():
        if not line.startswith("#"):
            return None
        if _YAML_TIME.match(line):
            return line
    return None


def write(measured: Measurement, markdown: Path = LECTURES_MD) -> list[str]:
    """Rewrite the preset's header and its markers in `markdown`; what was rewritten, for the log."""
    path = EXPERIMENTS / f"{measured.preset}.yaml"
    path.write_text(rewrite_header(path.read_text(encoding="utf-8"), yaml_line(measured)), encoding="utf-8")
    done = [str(path.relative_to(ROOT))]
    text, count = rewrite_markdown(
        markdown.read_text(encoding="utf-8"), measured.preset, markdown_text(measured)
    )
    if count:
        markdown.write_text(text, encoding="utf-8")
        done.append(f"{markdown.relative_to(ROOT)} ({count})")
    return done


# --- measuring ------------------------------------------------------------------------------------------


def resolve(name: str) -> str:
    """NAME as experiment=NAME names it, else lectures/NAME."""
    for preset in (name, f"lectures/{name}"):
        if (EXPERIMENTS / f"{preset}.yaml").is_file():
            return preset
    raise SystemExit(f"no preset {name!r} under {EXPERIMENTS.relative_to(ROOT)}/")


def short_name(preset: str) -> str:
    """The shortest NAME that `--only NAME` resolves to the preset."""
    name = preset.removeprefix("lectures/")
    return name if not (EXPERIMENTS / f"{name}.yaml").is_file() else preset


def lecture_presets() -> list[str]:
    return sorted(
        p.relative_to(EXPERIMENTS).with_suffix("").as_posix() for p in EXPERIMENTS.glob("lectures/*.yaml")
    )


def stand_ins(workdir: Path) -> dict[str, Path]:
    """The files a preset's data needs, written here as benchmarks/end_to_end.py writes them."""
    import end_to_end

    from nnexp.data.curve import write_curve_csv

    one_row = workdir / "one_example.csv"
    one_row.write_text("x1,x2,x3,x4,y1,y2\n0.8,0.4,0.4,0.2,1,0\n")  # seed 001's one example
    return {
        "fish": end_to_end.write_fish_csv(workdir / "Fish.csv"),
        "text": end_to_end.write_text(workdir / "timemachine.txt"),
        "curve": write_curve_csv(workdir / "curve.csv"),
        "one_row": one_row,
    }


def command_for(preset: str, files: dict[str, Path]) -> list[str]:
    """`nnexp [-m] experiment=PRESET [data stand-in]`: the smoke overrides without debug=smoke."""
    import end_to_end

    overrides, sweep = end_to_end.smoke_overrides(preset, files)
    return [*(["-m"] if sweep else []), *[o for o in overrides if o != "debug=smoke"]]


def _load() -> float:
    return os.getloadavg()[0]


def settle(limit_s: float) -> None:
    """Wait (at most limit_s) for the load a previous run left to fall to the idle line."""
    deadline = time.monotonic() + limit_s
    while _load() > IDLE_LOAD and time.monotonic() < deadline:
        time.sleep(2)


def measure(preset: str, files: dict[str, Path], workdir: Path, settle_s: float) -> Measurement:
    import end_to_end

    args = command_for(preset, files)
    scratch = Path(tempfile.mkdtemp(prefix=f"preset_{preset.replace('/', '_')}_", dir=workdir))
    settle(settle_s)
    before, started = _load(), time.perf_counter()
    done = subprocess.run(
        [*end_to_end.NNEXP, *args], cwd=scratch, env=end_to_end._env(), capture_output=True, text=True,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    seconds, after = time.perf_counter() - started, _load()
    if done.returncode != 0:
        raise SystemExit(f"failed ({done.returncode}): nnexp {' '.join(args)}\n{done.stderr[-3000:]}")
    cores = os.cpu_count() or 1
    threads = [
        json.loads(path.read_text()).get("provenance", {}).get("threads") or cores
        for path in scratch.rglob("summary.json")
    ]
    own = min(max(threads, default=cores), cores) * (1 - math.exp(-seconds / 60))
    return Measurement(
        preset=preset,
        command="nnexp " + " ".join(map(end_to_end._shown, args)),
        seconds=seconds,
        load_before=before,
        load_after=after,
        own_load=own,
        date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
        cores=cores,
    )


def measure_all(names: list[str], workdir: Path, repeats: int, settle_s: float) -> list[Measurement]:
    """The median-time run of `repeats` for each preset (its own loads kept with it)."""
    files = stand_ins(workdir)
    found = []
    for preset in names:
        runs = sorted(
            (measure(preset, files, workdir, settle_s) for _ in range(repeats)), key=lambda m: m.seconds
        )
        median = runs[len(runs) // 2]
        loads = f"load {median.load_before:.2f} -> {median.load_after:.2f}"
        note(f"preset {preset}: {median.seconds:.2f} s, {loads}")
        found.append(median)
    return found


def note(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def rows(names: list[str], workdir: Path, repeats: int = 1, settle_s: float = 120, dry_run: bool = False):
    """benchmarks/run.py's rows: measure, then rewrite the stated times (unless dry_run)."""
    table: list[dict[str, Any]] = []
    for measured in measure_all([resolve(name) for name in names], workdir, repeats, settle_s):
        written = [] if dry_run else write(measured)
        note(f"  {yaml_line(measured)}" + (f"\n  written: {', '.join(written)}" if written else ""))
        table.append(
            {
                "what": f"preset: `{measured.command}`",
                "unit": "s",
                "runner": measured.seconds,
                "note": ("idle" if measured.idle else "NOT idle")
                + f": 1-minute load {measured.load_before:.2f} before, {measured.load_after:.2f} after"
                + f" (own share {measured.own_load:.2f})"
                + ("" if dry_run else "; stated time rewritten"),
            }
        )
    return table


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", metavar="NAME", help="these presets (default: the lectures)")
    parser.add_argument("--dry-run", action="store_true", help="measure, print the new lines, write nothing")
    parser.add_argument("--repeats", type=int, default=1, help="runs per preset; the median is stated (1)")
    parser.add_argument(
        "--settle", type=float, default=120, metavar="S",
        help="wait at most S seconds before each run for the load to fall to 1.5 (default 120)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.settle < 0 or args.repeats < 1:
        parser.error("--settle takes seconds >= 0 and --repeats a count >= 1")
    for name in args.only or []:  # every name found before the first run, not after minutes of them
        try:
            resolve(name)
        except SystemExit as unknown:
            parser.error(str(unknown))  # one line, exit 2
    with tempfile.TemporaryDirectory(prefix="nnexp_presets_") as scratch:
        for row in rows(
            args.only or lecture_presets(), Path(scratch), args.repeats, args.settle, args.dry_run
        ):
            print(f"{row['what']}: {row['runner']:.2f} s; {row['note']}")


if __name__ == "__main__":
    main()
