"""On cores shared with other work, a run takes the cores that are free and its idle threads sleep.

Left null, `trainer.threads` is chosen from the cores this process may run on and the machine's 1-minute
load (less this process's own part of it); `trainer.threads=N` keeps full control; a parallel sweep
splits the free cores between the jobs it runs at once. summary.json records the threads and why.
The `nnexp` command tells OpenMP's idle threads to wait passively before torch is imported.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time

import pytest
import torch

import nnexp
from conftest import compose_config, read_summary, resume_in_process
from nnexp.sweep import devices
from nnexp.train import threads
from nnexp.train.threads import Choice, choose, choose_here, settle
from nnexp.train.threads import running_now as _real_running_now


@pytest.fixture(autouse=True)
def _the_load_is_the_tests_to_say(monkeypatch):
    """A CI runner's OMP_NUM_THREADS would cap every choice below, and the threads running now beside
    the test would be counted (the tests that need them set their own)."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads, "running_now", lambda: None)


# --- the choice, on given cores and loads ----------------------------------------------------------------


def test_an_idle_machine_gives_one_thread_per_core_as_torch_does_by_default():
    assert choose(cores=2, load=0.1) == Choice(2, "2 of 2 cores free (1-minute load 0.10)")
    assert choose(cores=16, load=0.4).threads == 16


def test_the_load_of_other_work_rounded_to_whole_cores_keeps_that_many_cores_busy():
    assert choose(cores=2, load=1.0).threads == 1
    assert choose(cores=8, load=2.6).threads == 5  # 2.6 busy cores: 3
    assert choose(cores=8, load=2.4).threads == 6
    assert choose(cores=4, load=0.5).threads == 3  # half a core rounds up, not to the even number


def test_work_that_has_just_ended_is_not_counted_nor_a_moment_of_work_that_pauses():
    """The 1-minute average still counts the run that ended a second ago; one look at the threads running
    now misses work that pauses: the smaller of the two is what other work takes."""
    assert choose(cores=2, load=1.2, running=0.0) == Choice(
        2, "2 of 2 cores free (1-minute load 1.20, 0.0 other threads running now)"
    )
    assert choose(cores=2, load=0.2, running=3.0).threads == 2
    assert choose(cores=2, load=4.1, running=4.0).threads == 1  # four busy loops, for a minute and now


def test_a_busy_loop_beside_this_process_is_running_now():
    loop = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        seen = _real_running_now(samples=20)
    finally:
        loop.kill()
        loop.wait()
    assert seen is None or seen >= 0.8  # None: no /proc/loadavg (not Linux)


def test_with_every_core_taken_a_run_still_gets_one_thread_and_says_so():
    choice = choose(cores=2, load=6.0)  # beside four busy loops, and more
    assert choice == Choice(1, "none of 2 cores free, one thread (1-minute load 6.00)")


def test_this_process_own_load_is_not_counted_against_it():
    """A sequential sweep's earlier jobs, or a notebook's earlier runs, ran in this very process."""
    assert choose(cores=2, load=1.9, ours=1.8) == Choice(
        2, "2 of 2 cores free (1-minute load 1.90, 1.80 of it this process's)"
    )
    assert choose(cores=2, load=0.3, ours=1.0).threads == 2  # an estimate above the load: all free, no more


def test_the_cores_are_those_this_process_may_run_on_not_the_whole_machine(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 2, 5}, raising=False)  # a taskset of three
    monkeypatch.setattr(os, "getloadavg", lambda: (1.0, 1.0, 1.0))
    monkeypatch.setattr(threads, "own_load", lambda: 0.0)
    assert threads.allowed_cores() == 3
    assert choose_here() == Choice(2, "2 of 3 cores free (1-minute load 1.00)")


def test_in_a_cpu_set_the_machines_load_fills_the_cores_this_process_may_not_use_first():
    """A SLURM job given 4 of a node's 64 cores, beside other jobs keeping 60 busy: its 4 are free."""
    assert choose(cores=4, load=60.0, machine_cores=64) == Choice(
        4, "4 of 4 cores free (1-minute load 60.00, the machine's 64 cores)"
    )
    assert choose(cores=4, load=63.0, machine_cores=64).threads == 1


def test_a_users_omp_num_threads_stays_the_most_a_run_takes(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    monkeypatch.setattr(threads, "own_load", lambda: 0.0)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert choose_here() == Choice(1, "2 of 2 cores free (1-minute load 0.00); OMP_NUM_THREADS=1")


def test_without_a_load_average_every_allowed_core_is_taken(monkeypatch):
    assert choose(cores=4, load=None) == Choice(4, "4 cores (no load average on this system)")
    monkeypatch.delattr(os, "getloadavg")  # Windows keeps none
    assert threads.load_average() is None


def test_a_process_that_kept_a_core_busy_for_two_minutes_owns_most_of_one_core_of_load(monkeypatch):
    """The 1-minute load weighs the past by exp(-age / 60 s): CPU time spread over the process's age."""
    monkeypatch.setattr(threads, "_process_age_s", lambda: 120.0)
    monkeypatch.setattr(threads.time, "process_time", lambda: 120.0)
    assert threads.own_load() == pytest.approx(1 - math.exp(-2))
    monkeypatch.setattr(threads.time, "process_time", lambda: 2.0)  # started 2 minutes ago, mostly idle
    assert threads.own_load() < 0.02


def test_a_fresh_process_owns_almost_none_of_the_load():
    assert float(_in_a_fresh_python("from nnexp.train.threads import own_load; print(own_load())")) < 0.2


# --- a parallel sweep: the free cores split between its jobs --------------------------------------------


def test_on_an_idle_machine_a_sweep_job_gets_the_split_it_always_got(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    assert devices.job_threads(concurrent=2, threads=None).threads == 4
    assert devices.plan(1, 2, gpus=0, cores=8, device="cpu", threads=None).threads == 4


def test_a_sweep_counts_its_own_jobs_load_as_its_own_and_shares_what_other_users_leave(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    monkeypatch.setattr(threads, "own_load", lambda: 0.0)
    monkeypatch.setattr(os, "getloadavg", lambda: (4.0, 4.0, 4.0))  # the other job's 4 threads
    assert devices.job_threads(concurrent=2, threads="auto").threads == 4
    monkeypatch.setattr(os, "getloadavg", lambda: (8.0, 8.0, 8.0))  # and another user's 4 busy threads
    assert devices.job_threads(concurrent=2, threads=None).threads == 4  # null: the same split, always
    choice = devices.job_threads(concurrent=2, threads="auto")
    assert choice == Choice(
        2, "4 of 8 cores free (1-minute load 8.00, 4.00 of it this sweep's), split between 2 jobs at once"
    )
    assert devices.job_threads(concurrent=2, threads=3) == Choice(3, "trainer.threads=3")  # it wins


# --- a run: the choice set for torch, once, and recorded ------------------------------------------------


def test_trainer_threads_keeps_full_control_whatever_the_load(monkeypatch):
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    assert settle(compose_config("trainer.threads=1")) == Choice(1, "trainer.threads=1")
    assert torch.get_num_threads() == 1
    monkeypatch.setattr(os, "getloadavg", lambda: (50.0, 50.0, 50.0))
    with threads.held(Choice(1, "a sweep's share")):
        assert settle(compose_config("trainer.threads=3")).threads == 3
    assert torch.get_num_threads() == 3


def test_auto_threads_are_chosen_once_per_run_and_set_for_torch(monkeypatch):
    """provenance records the choice before the experiment is built; the build applies the same one."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(threads, "own_load", lambda: 0.0)
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    cfg = compose_config("trainer.threads=auto")
    assert settle(cfg).threads == 2 and torch.get_num_threads() == 2
    monkeypatch.setattr(os, "getloadavg", lambda: (7.0, 7.0, 7.0))
    assert settle(cfg).threads == 2  # the same run: the same choice
    assert settle(compose_config("trainer.threads=auto")).threads == 1  # the next run looks again
    assert torch.get_num_threads() == 1


def test_by_default_a_run_takes_the_free_cores_and_null_keeps_torchs_count_however_busy(monkeypatch):
    """The last digits of a result depend on the thread count: with null every rerun gets the same count."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    torch.set_num_threads(2)
    monkeypatch.setattr(os, "getloadavg", lambda: (9.0, 9.0, 9.0))
    assert settle(compose_config("trainer.threads=null")) == Choice(
        2, "trainer.threads=null: torch's own count"
    )
    assert torch.get_num_threads() == 2
    assert settle(compose_config()).threads == 1  # auto: none of the 2 cores is free
    assert torch.get_num_threads() == 1


def test_a_resumed_run_keeps_the_threads_it_started_with_so_its_numbers_continue_exactly(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(os, "getloadavg", lambda: (9.0, 9.0, 9.0))  # the choice now would be 1
    assert settle(compose_config(), kept=2) == Choice(2, "kept from the start of the run it resumes (2)")
    assert settle(compose_config(), kept=8) == Choice(  # resumed where fewer cores are allowed
        2,
        "kept from the start of the run it resumes (8), cut to the 2 cores this process may run on",
        started_with=8,
    )
    assert settle(compose_config("trainer.threads=1"), kept=2).threads == 1  # an override still wins


def test_a_resumed_run_trains_on_with_the_threads_it_was_stopped_with(tmp_path):
    torch.set_num_threads(1)  # null: torch's default, here one thread
    first = nnexp.run(["debug=smoke", "device=cpu", "trainer.threads=null"], output_dir=tmp_path / "run")
    assert read_summary(first.run_dir)["provenance"]["threads"] == 1
    torch.set_num_threads(2)  # the machine it resumes on gives two
    resumed = resume_in_process(first.run_dir, "trainer.epochs=2", "force=true")
    recorded = read_summary(resumed.run_dir)["provenance"]
    assert (recorded["threads"], recorded["threads_chosen"]) == (
        1,
        "kept from the start of the run it resumes (1)",
    )
    assert torch.get_num_threads() == 2  # the caller's count, back after the run


def test_a_parallel_sweep_jobs_share_is_its_runs_choice(monkeypatch):
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    share = Choice(1, "1 of 2 cores free (1-minute load 0.00), split between 2 jobs at once")
    with threads.held(share):
        assert settle(compose_config()) == share
        assert settle(compose_config("trainer.threads=auto")) == share
    assert settle(compose_config("trainer.threads=auto")).threads == threads.allowed_cores()


def test_the_summary_records_the_threads_and_why(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(os, "getloadavg", lambda: (6.0, 5.0, 4.0))  # four busy loops and more
    folder = nnexp.run(
        ["debug=smoke", "device=cpu", "trainer.threads=auto"], output_dir=tmp_path / "busy"
    ).run_dir
    recorded = read_summary(folder)["provenance"]
    assert recorded["threads"] == 1 == torch.get_num_threads()
    assert recorded["threads_chosen"].startswith("none of 2 cores free, one thread (1-minute load 6.00")
    overrides = ["debug=smoke", "device=cpu", "trainer.threads=2"]
    folder = nnexp.run(overrides, output_dir=tmp_path / "set").run_dir
    recorded = read_summary(folder)["provenance"]
    assert (recorded["threads"], recorded["threads_chosen"]) == (2, "trainer.threads=2")


# --- idle threads wait passively where the cores are shared: set before torch is imported ------------------


def _busy(monkeypatch, load: float) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(os, "getloadavg", lambda: (load, load, load))


def test_idle_threads_wait_passively_when_other_work_shares_the_cores_and_spin_when_the_cores_are_free(
    monkeypatch,
):
    """Spinning ~3 ms before sleeping is what makes a small network's short parallel steps fast on free
    cores; beside other work it takes the core from the thread it waits for."""
    _busy(monkeypatch, 4.0)
    environ: dict[str, str] = {}
    threads.wait_passively_if_shared(environ)
    assert environ == {"OMP_WAIT_POLICY": "PASSIVE"}
    _busy(monkeypatch, 0.1)
    environ = {}
    threads.wait_passively_if_shared(environ)
    assert environ == {}


def test_a_users_own_wait_policy_wins(monkeypatch):
    _busy(monkeypatch, 4.0)
    environ = {"OMP_WAIT_POLICY": "ACTIVE"}
    threads.wait_passively_if_shared(environ)
    assert environ == {"OMP_WAIT_POLICY": "ACTIVE"}


def _in_a_fresh_python(code: str, **env: str) -> str:
    environment = {key: value for key, value in os.environ.items() if key != "OMP_WAIT_POLICY"}  # conftest's
    done = subprocess.run(
        [sys.executable, "-c", code], env={**environment, **env}, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


# A machine four busy loops keep busy, and a spy on the moment torch is first imported.
BUSY_AND_SPIED = """
import os, sys
os.getloadavg = lambda: (4.0, 4.0, 4.0)
import nnexp.train.threads
nnexp.train.threads.running_now = lambda: None
seen = []
class Spy:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" and not seen:
            seen.append(os.environ.get("OMP_WAIT_POLICY"))
sys.meta_path.insert(0, Spy())
"""


def test_the_nnexp_command_sets_it_before_torch_is_imported(tmp_path):
    run = f"sys.argv = ['nnexp', 'debug=smoke', 'device=cpu', 'hydra.run.dir={tmp_path / 'run'}']"
    code = f"{BUSY_AND_SPIED}\n{run}\nfrom nnexp.cli.entry import main\nmain()\nprint(seen)"
    assert _in_a_fresh_python(code).splitlines()[-1] == "['PASSIVE']"


def test_nnexp_run_from_python_sets_it_only_while_it_can_still_take_effect():
    spied = f"{BUSY_AND_SPIED}\nimport nnexp.api\nimport torch\nprint(seen)"
    assert _in_a_fresh_python(spied).splitlines()[-1] == "['PASSIVE']"
    # torch imported first: OpenMP has read the environment already, so nnexp does not pretend
    after_torch = (
        "import torch, os; os.getloadavg = lambda: (4.0, 4.0, 4.0); import nnexp.api; print(os.environ)"
    )
    assert "OMP_WAIT_POLICY" not in _in_a_fresh_python(after_torch)


def test_the_ranks_of_a_data_parallel_run_share_the_cores(monkeypatch):
    """trainer.devices=2 on the CPU: each rank takes its share of the free cores (auto) or of all of them
    (null), held for its run; a number, or a launcher's OMP_NUM_THREADS, decides instead."""
    from nnexp.runs.launch import _share_threads

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    monkeypatch.setattr(threads, "own_load", lambda: 0.0)
    share = _share_threads(compose_config(), 2)
    assert share == Choice(
        1, "2 of 2 cores free (1-minute load 0.00, 0.00 of it this run's), split between 2 ranks"
    )
    with threads.held(share):
        assert settle(compose_config()) == share
    assert _share_threads(compose_config("trainer.threads=null"), 2) == Choice(
        1, "2 cores split between 2 ranks"
    )
    assert _share_threads(compose_config("trainer.threads=2"), 2) is None
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert _share_threads(compose_config(), 2) is None


@pytest.mark.parametrize(("value", "limit"), [("1", 1), (" 2 ", 2), ("+1", 1), ("1,2", 1), ("8", 8)])
def test_omp_num_threads_caps_auto_as_openmp_reads_it(monkeypatch, value, limit):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    monkeypatch.setattr(threads, "own_load", lambda: 0.0)
    monkeypatch.setenv("OMP_NUM_THREADS", value)
    assert choose_here() == Choice(
        limit, f"16 of 16 cores free (1-minute load 0.00); OMP_NUM_THREADS={value.strip()}"
    )


@pytest.mark.parametrize("value", ["0", "-3", "abc", "", "1_0", "٣"])
def test_a_value_openmp_refuses_sets_no_limit(value):
    assert threads.omp_thread_limit(value) is None


def test_a_resume_on_fewer_cores_says_so_and_the_next_resume_goes_back_to_the_count_it_started_with(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    torch.set_num_threads(2)
    first = nnexp.run(["debug=smoke", "device=cpu", "trainer.threads=null"], output_dir=tmp_path / "run")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)  # taskset -c 0
    resumed = resume_in_process(first.run_dir, "trainer.epochs=2", "force=true")
    recorded = read_summary(resumed.run_dir)["provenance"]
    assert (recorded["threads"], recorded["threads_chosen"], recorded["threads_started"]) == (
        1,
        "kept from the start of the run it resumes (2), cut to the 1 core this process may run on",
        2,
    )
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    again = resume_in_process(first.run_dir, "trainer.epochs=3", "force=true")
    recorded = read_summary(again.run_dir)["provenance"]
    assert (recorded["threads"], recorded["threads_chosen"]) == (
        2,
        "kept from the start of the run it resumes (2)",
    )
    assert "threads_started" not in recorded


@pytest.mark.parametrize("recorded", [99999999999999999999999, 2**31, 4097, 0, -1, True, "2", 1.5, [2], None])
def test_a_thread_count_a_run_folder_cannot_mean_is_not_kept(tmp_path, recorded):
    """A run folder is untrusted: a count no machine has is not carried into the resume's record."""
    torch.set_num_threads(2)
    first = nnexp.run(["debug=smoke", "device=cpu", "trainer.threads=null"], output_dir=tmp_path / "run")
    summary = json.loads((first.run_dir / "summary.json").read_text())
    summary["provenance"]["threads"] = summary["provenance"]["threads_started"] = recorded
    (first.run_dir / "summary.json").write_text(json.dumps(summary))
    resumed = resume_in_process(first.run_dir, "trainer.epochs=2", "force=true")
    provenance = read_summary(resumed.run_dir)["provenance"]
    assert "threads_started" not in provenance and str(recorded) not in provenance["threads_chosen"]
