"""A parallel sweep gives each job running at once its own GPU and a share of the CPU threads.

No GPU here: $NNEXP_FAKE_GPU_COUNT makes the assignment plan for that many (nothing is placed on them),
so what each job was given is checked in its summary.json; the real check runs on a machine with GPUs.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from conftest import read_summary, run_folders, run_nnexp
from nnexp.cli.hydra_hooks import register_resolvers
from nnexp.paths import CONFIG_DIR
from nnexp.sweep import devices
from nnexp.sweep.devices import concurrent_jobs, plan

JOBLIB = {"_target_": "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher", "n_jobs": 2}


def test_jobs_running_at_once_get_distinct_gpus_and_split_the_cores():
    """4 jobs, 2 at once, 2 GPUs, 2 cores: jobs 0 and 2 on cuda:0, 1 and 3 on cuda:1, one thread each."""
    given = [plan(job, 2, gpus=2, cores=2, device="auto", threads=None) for job in range(4)]
    assert [g.device for g in given] == ["cuda:0", "cuda:1", "cuda:0", "cuda:1"]
    assert [g.worker for g in given] == [0, 1, 0, 1]
    assert {g.threads for g in given} == {1}
    # 4 jobs at once on 2 GPUs: two per GPU; 16 cores: 4 threads each; trainer.threads wins when set
    assert [plan(job, 4, 2, 16, "cuda", None).device for job in range(4)] == ["cuda:0", "cuda:1"] * 2
    assert plan(3, 4, 2, 16, "cuda", None).threads == 4
    assert plan(3, 4, 2, 16, "cuda", 3).threads == 3


def test_without_a_gpu_or_on_the_cpu_only_the_threads_are_split():
    assert plan(1, 2, gpus=0, cores=8, device="auto", threads=None) == devices.Assignment(1, 2, "auto", 4)
    assert plan(1, 2, gpus=2, cores=8, device="cpu", threads=None).device == "cpu"
    assert plan(1, 2, gpus=2, cores=8, device="cuda:0", threads=None).device == "cuda:0"  # named outright
    assert plan(0, 3, gpus=0, cores=2, device="auto", threads=None).threads == 1  # never 0


def test_only_a_launcher_that_runs_jobs_at_once_here_splits_the_machine():
    assert concurrent_jobs(OmegaConf.create(JOBLIB)) == 2
    basic = {"_target_": "hydra._internal.core_plugins.basic_launcher.BasicLauncher"}
    assert concurrent_jobs(OmegaConf.create(basic)) == 1
    slurm = {"_target_": "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"}
    assert concurrent_jobs(OmegaConf.create(slurm)) == 1  # SLURM gives each job its own GPUs and cores


def test_a_job_waits_while_an_earlier_job_still_holds_its_slot(tmp_path):
    """Jobs that end out of turn never share a GPU: job 2 waits for job 0's slot to be released."""
    entered = threading.Event()

    def later_job() -> None:
        with devices._slot(str(tmp_path), 0, poll_s=0.02):
            entered.set()

    with devices._slot(str(tmp_path), 0):
        waiting = threading.Thread(target=later_job)
        waiting.start()
        time.sleep(0.3)
        assert not entered.is_set()
        with devices._slot(str(tmp_path), 1):  # another slot is free meanwhile
            pass
    waiting.join(timeout=5)
    assert entered.is_set()


def _launcher(*overrides: str):
    register_resolvers()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("config", overrides=list(overrides), return_hydra_config=True).hydra.launcher


def test_the_gpus_launcher_runs_one_job_per_gpu(monkeypatch):
    monkeypatch.setenv(devices.FAKE_GPU_COUNT_ENV, "3")
    launcher = _launcher("hydra/launcher=gpus")
    assert launcher.n_jobs == 3 and launcher._target_.endswith("JoblibLauncher")
    monkeypatch.setenv(devices.FAKE_GPU_COUNT_ENV, "0")
    assert _launcher("hydra/launcher=gpus").n_jobs == 1


def test_a_four_job_parallel_sweep_on_two_gpus_gives_two_jobs_to_each_and_records_it(tmp_path):
    result = run_nnexp(
        "-m", "hydra/launcher=gpus", "seed=0,1,2,3", "debug=smoke", "trainer.threads=null",
        cwd=tmp_path, env={devices.FAKE_GPU_COUNT_ENV: "2"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    folders = run_folders(tmp_path)
    assert len(folders) == 4
    given = {read_summary(folder)["seed"]: read_summary(folder)["assigned"] for folder in folders}
    assert Counter(g["device"] for g in given.values()) == {"cuda:0": 2, "cuda:1": 2}
    assert [given[seed]["worker"] for seed in range(4)] == [0, 1, 0, 1]
    cores = devices.cpu_cores()
    for seed, assigned in given.items():
        assert assigned["concurrent_jobs"] == 2
        assert assigned["threads"] == max(1, cores // 2)
        summary = read_summary(folders[0].parent / str(seed))
        assert summary["provenance"]["threads"] == assigned["threads"]


def test_a_sweep_without_a_gpu_splits_the_threads_and_a_one_at_a_time_sweep_keeps_them(tmp_path):
    result = run_nnexp(
        "-m", "hydra/launcher=parallel", "seed=0,1", "debug=smoke", "trainer.threads=1",
        cwd=_made(tmp_path / "parallel"), env={devices.FAKE_GPU_COUNT_ENV: "0"},
    )  # fmt: skip
    (tmp_path / "basic").mkdir()
    basic = run_nnexp("-m", "seed=0,1", "debug=smoke", cwd=tmp_path / "basic")
    assert result.returncode == 0, result.stderr
    assert basic.returncode == 0, basic.stderr
    for folder in run_folders(tmp_path / "parallel"):
        assert read_summary(folder)["assigned"]["device"] == "auto"  # no GPU: it trains where it would
        assert read_summary(folder)["assigned"]["threads"] == 1  # trainer.threads given: it wins
    for folder in run_folders(tmp_path / "basic"):
        assert "assigned" not in read_summary(folder)


def _made(folder):
    folder.mkdir()
    return folder
