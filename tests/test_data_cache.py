"""A sweep's jobs reuse the last job's data when its config is unchanged (issue 17), and only then: a
changed config, seed or file, or a tensor changed in place, builds the data afresh; a run gives the
same numbers with the kept data as with data read from the files."""

from __future__ import annotations

import json
import random

import pytest
import torch

import nnexp
from nnexp.data import DataBundle, DataSpec, TensorSplit
from nnexp.data import cache as data_cache

CPU = torch.device("cpu")


@pytest.fixture
def in_a_sweep():
    data_cache.keep_between_jobs()
    yield
    data_cache.keep_between_jobs(False)


class Builder:
    """Counts its builds; draws from torch's global generator as a careless data builder might."""

    def __init__(self) -> None:
        self.builds = 0

    def __call__(self) -> DataBundle:
        self.builds += 1
        inputs, targets = torch.randn(6, 2), torch.arange(6) % 2
        split = TensorSplit(inputs, targets)
        return DataBundle(DataSpec("tiny", "classification", (2,), 2), split, None, split)


def test_an_unchanged_data_config_is_built_once_and_draws_the_same_random_numbers_after(in_a_sweep):
    build = Builder()
    torch.manual_seed(0), random.seed(0)
    first = data_cache.cached({"rows": 6}, 0, CPU, build)
    after_first = torch.rand(3), random.random()
    torch.manual_seed(0), random.seed(0)
    second = data_cache.cached({"rows": 6}, 0, CPU, build)
    assert second is first and build.builds == 1
    after_second = torch.rand(3), random.random()
    assert torch.equal(after_first[0], after_second[0]) and after_first[1] == after_second[1]


@pytest.mark.parametrize(("config", "seed"), [({"rows": 7}, 0), ({"rows": 6}, 1)])
def test_another_data_config_or_seed_builds_again(in_a_sweep, config, seed):
    build = Builder()
    data_cache.cached({"rows": 6}, 0, CPU, build)
    data_cache.cached(config, seed, CPU, build)
    assert build.builds == 2


def test_a_tensor_changed_in_place_builds_again(in_a_sweep):
    build = Builder()
    first = data_cache.cached({"rows": 6}, 0, CPU, build)
    first.train.inputs.mul_(2)
    assert data_cache.cached({"rows": 6}, 0, CPU, build) is not first and build.builds == 2


def test_a_named_file_that_changed_builds_again(in_a_sweep, tmp_path):
    csv = tmp_path / "data.csv"
    csv.write_text("a,b\n1,2\n")
    build = Builder()
    data_cache.cached({"path": str(csv)}, 0, CPU, build)
    csv.write_text("a,b\n1,2\n3,4\n")
    data_cache.cached({"path": str(csv)}, 0, CPU, build)
    assert build.builds == 2


def test_outside_a_sweep_the_data_is_always_built():
    build = Builder()
    data_cache.cached({"rows": 6}, 0, CPU, build)
    data_cache.cached({"rows": 6}, 0, CPU, build)
    assert build.builds == 2


def final_metrics(folder) -> dict:
    return json.loads((folder / "summary.json").read_text())["metrics"]["final"]


@pytest.fixture
def bundles_handed_out(monkeypatch):
    """Every bundle data_cache.cached hands to a run in this process."""
    handed = []
    build = data_cache.cached
    monkeypatch.setattr(data_cache, "cached", lambda *args: handed.append(build(*args)) or handed[-1])
    return handed


def test_a_sweep_job_on_kept_data_scores_what_the_same_run_alone_scores(tmp_path, bundles_handed_out):
    """`nnexp -m model.hidden=[16],[32]`'s jobs run in one process (Hydra's basic launcher) with the data
    cache on (nnexp/cli/command.py): run so here, the second job trains on the first's data."""
    data_cache.keep_between_jobs()
    try:
        nnexp.run(["model.hidden=[16]", "trainer.epochs=2"], output_dir=tmp_path / "sweep" / "0")
        second_job = nnexp.run(["model.hidden=[32]", "trainer.epochs=2"], output_dir=tmp_path / "sweep" / "1")
    finally:
        data_cache.keep_between_jobs(False)
    assert bundles_handed_out[1] is bundles_handed_out[0]  # kept, not read again
    single = nnexp.run(["model.hidden=[32]", "trainer.epochs=2"], output_dir=tmp_path / "alone")
    assert bundles_handed_out[2] is not bundles_handed_out[0]  # read from the files
    assert final_metrics(second_job.run_dir) == final_metrics(single.run_dir)
