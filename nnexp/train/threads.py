"""How many CPU threads torch trains with, and why: summary.json's provenance records both.

With `trainer.threads=auto`, the default, a run takes the cores it may run on (a taskset's or a
container's CPU set, not the whole machine) less those the machine's load keeps busy. On a shared lab
server or CI runner, threads beyond the free cores only queue for a core, and every parallel operation
then waits for the thread that queued longest: beside four busy loops on 2 cores the default run took
2.7-3.1x its time alone with two threads and 2.6x with one (benchmarks/RESULTS.md). One thread per free core
is what an idle machine gives (torch's own default, one per core), and fewer when the cores are taken.
The last digits of a result depend on the count, so summary.json records it and why;
`trainer.threads=N` decides outright, and null keeps torch's default, the same count on every rerun.

A parallel sweep (nnexp/sweep/devices.py) splits the free cores between the jobs it runs at once and hands
each job its share here (`held`); the load its own jobs put on the cores is not counted against them.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
import weakref
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass
from typing import Any

LOAD_WINDOW_S = 60.0  # the time constant of the 1-minute load average

_held: Choice | None = None  # the share a parallel sweep gave the job this process runs now
_settled: tuple[weakref.ref, Choice] | None = None  # the last run's config and its choice


@dataclass(frozen=True)
class Choice:
    threads: int
    why: str  # e.g. "2 of 2 cores free (1-minute load 0.10)"; "trainer.threads=1"
    started_with: int | None = None  # a resumed run's count from its start, where fewer cores allow fewer


def allowed_cores() -> int:
    """Cores this process may run on (a taskset or a container's CPU set, not the whole machine)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def load_average() -> float | None:
    """The 1-minute load average: threads running or waiting for a core, averaged; None where the system
    keeps none (Windows)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def running_now(samples: int = 5, interval_s: float = 0.002) -> float | None:
    """Threads of other processes running or waiting for a core right now (Linux; None elsewhere), a mean
    of a few looks. Unlike the 1-minute average, it does not remember work that has just ended: a run
    started right after another sees the cores the other gave back."""
    counts = []
    try:
        for look in range(samples):
            if look:
                time.sleep(interval_s)
            with open("/proc/loadavg") as loadavg:  # "0.50 0.40 0.30 3/412 9876": runnable/all threads
                counts.append(int(loadavg.read().split()[3].split("/")[0]) - 1)  # less the one reading it
    except (OSError, ValueError, IndexError):
        return None
    return max(0.0, sum(counts) / len(counts))


def own_load() -> float:
    """This process's part of the 1-minute load: its CPU time spread over its age, weighted as the load's
    exponential average weighs it. A sequential sweep's earlier jobs, or a notebook's earlier runs, ran in
    this process and are not another user's. An estimate from below (time spent queued for a core counts
    in the load, not in CPU time), so in doubt a run takes fewer threads, never more."""
    cpu_s = time.process_time()  # every thread of this process
    age_s = _process_age_s() or cpu_s
    if age_s <= 0:
        return 0.0
    return cpu_s / age_s * (1 - math.exp(-age_s / LOAD_WINDOW_S))


def _process_age_s() -> float | None:
    try:  # Linux: field 22 of /proc/self/stat is the start, in clock ticks since boot
        with open("/proc/self/stat") as stat, open("/proc/uptime") as uptime:
            started_ticks = int(stat.read().rsplit(")", 1)[1].split()[19])
            return float(uptime.read().split()[0]) - started_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def choose(
    cores: int,
    load: float | None,
    ours: float = 0.0,
    jobs: int = 1,
    machine_cores: int | None = None,
    running: float | None = None,
    ranks: bool = False,
) -> Choice:
    """Threads for one of `jobs` jobs running at once on `cores` cores, with the machine's 1-minute `load`
    of which `ours` is this process's own (and its sweep's other jobs'), and `running` other threads
    runnable right now. The others' load (the smaller of the two: the average still counts work that has
    ended, a single look misses work that pauses), rounded to whole cores, keeps that many cores busy; the
    rest are free (at least one, at most `cores`) and split between the jobs. Where this process may run
    on only `cores` of the `machine_cores` (a taskset, a SLURM job's CPU set), the others' load fills the
    cores it may not use first: the load average is the machine's. `ranks`: the jobs are the ranks of one
    data-parallel run."""
    split = f", split between {jobs} {'ranks' if ranks else 'jobs at once'}" if jobs > 1 else ""
    if load is None:
        return Choice(max(1, cores // jobs), f"{cores} cores (no load average on this system){split}")
    others = max(0.0, load - ours)
    now = ""
    if running is not None:
        others = min(others, running)
        now = f", {running:.1f} other threads running now"
    elsewhere = ""
    if machine_cores and machine_cores > cores:
        others = max(0.0, others - (machine_cores - cores))
        elsewhere = f", the machine's {machine_cores} cores"
    free = min(cores, cores - math.floor(others + 0.5))
    whose = ""
    if ours >= 0.005:
        group = ("run" if ranks else "sweep") if jobs > 1 else "process"
        whose = f", {min(ours, load):.2f} of it this {group}'s"
    said = f"{free} of {cores} cores free" if free > 0 else f"none of {cores} cores free, one thread"
    why = f"{said} (1-minute load {load:.2f}{whose}{now}{elsewhere}){split}"
    return Choice(max(1, max(1, free) // jobs), why)


def choose_here(jobs: int = 1, siblings_load: float = 0.0, ranks: bool = False) -> Choice:
    """`choose` for this machine now; `siblings_load`: what a parallel sweep's other jobs may add. A user's
    (or a launcher's) OMP_NUM_THREADS, torch's own limit, stays the most it takes."""
    running = running_now()
    if running is not None:
        running = max(0.0, running - siblings_load)
    ours = own_load() + siblings_load
    choice = choose(allowed_cores(), load_average(), ours, jobs, os.cpu_count(), running, ranks)
    limit = omp_thread_limit(os.environ.get("OMP_NUM_THREADS", ""))
    if limit is not None and limit < choice.threads:
        return Choice(limit, f"{choice.why}; OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS'].strip()}")
    return choice


def omp_thread_limit(value: str) -> int | None:
    """The threads OMP_NUM_THREADS allows, read as OpenMP reads it: " 2 ", "+2" and the first level of a
    nested "2,1" are 2; a value OpenMP refuses (0, -3, "abc") sets no limit, as there."""
    first = value.split(",", 1)[0].strip().removeprefix("+")
    return int(first) if first.isdigit() and first.isascii() and int(first) > 0 else None


def wait_passively_if_shared(environ: MutableMapping[str, str]) -> None:
    """OMP_WAIT_POLICY=PASSIVE in `environ` (os.environ, before torch is imported: OpenMP reads it once)
    when other work already takes some of the cores; a user's own value wins. An idle OpenMP thread spins
    ~3 ms before it sleeps: on cores shared with other work the spinning takes the core from the thread it
    waits for (beside four busy loops on 2 cores the default run took 13x its time alone), but on free
    cores it is what makes a small network's many short parallel steps fast (passive waits made the
    default run 1.35x slower alone, benchmarks/RESULTS.md)."""
    if "OMP_WAIT_POLICY" not in environ and choose_here().threads < allowed_cores():
        environ["OMP_WAIT_POLICY"] = "PASSIVE"


def split_between(jobs: int, free_only: bool, ranks: bool = False) -> Choice:
    """One share of the cores for each of `jobs` running at once (a parallel sweep's jobs, or the `ranks`
    of one data-parallel run): of the free cores (`free_only`, trainer.threads=auto) or of them all (null).
    The other jobs put up to their own shares on the cores: that load is theirs, not another user's, so it
    is not counted against this one (it is still climbing while the first jobs start)."""
    cores = allowed_cores()
    share = max(1, cores // jobs)
    if not free_only:  # the same share whatever else runs: C // K of the C cores
        return Choice(share, f"{cores} cores split between {jobs} {'ranks' if ranks else 'jobs at once'}")
    return choose_here(jobs, siblings_load=(jobs - 1) * share, ranks=ranks)


@contextlib.contextmanager
def given_back() -> Iterator[None]:
    """A run sets torch's thread count for itself (`settle`); the caller's count comes back as it ends, so
    the next run in the process (a sweep's next job, a notebook's next cell) starts from the same count:
    with trainer.threads=null, torch's own."""
    import torch

    before = torch.get_num_threads()
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


@contextlib.contextmanager
def held(choice: Choice) -> Iterator[None]:
    """While a parallel sweep's job runs, the threads the sweep gave it are the run's choice."""
    global _held
    _held = choice
    try:
        yield
    finally:
        _held = None


def settle(cfg: Any, kept: int | None = None) -> Choice:
    """The threads the run of `cfg` trains with, set for torch: trainer.threads when given; else `kept`, the
    threads a resumed run started with (another count sums in another order: the last digits would
    differ from the run never stopped), at most the cores this process may run on; else a parallel
    sweep's share; else what the free cores allow (auto) or torch's default (null). Decided once per run:
    the summary records the choice before the experiment is built, and the build applies the same one."""
    global _settled
    if _settled is not None and _settled[0]() is cfg:
        return _settled[1]
    import torch

    explicit = cfg.trainer.get("threads")
    if explicit and explicit != "auto":
        choice = Choice(int(explicit), f"trainer.threads={int(explicit)}")
    elif kept:
        choice = Choice(int(kept), f"kept from the start of the run it resumes ({kept})")
        if kept > allowed_cores():  # the next resume, given the cores, goes back to `kept`
            cores = f"{allowed_cores()} core{'s' if allowed_cores() > 1 else ''}"
            cut = f"{choice.why}, cut to the {cores} this process may run on"
            choice = Choice(allowed_cores(), cut, started_with=int(kept))
    elif explicit == "auto":
        choice = _held or choose_here()
    else:  # null: the same count on every rerun, busy machine or not (the last digits depend on it)
        choice = _held or Choice(torch.get_num_threads(), "trainer.threads=null: torch's own count")

    torch.set_num_threads(choice.threads)
    _settled = (weakref.ref(cfg), choice)
    return choice
