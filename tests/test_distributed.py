"""Data-parallel training (trainer.devices, docs/distributed.md): two CPU processes with gloo train as one
process with twice the batch, rank 0 alone writes the run folder, a SIGTERM leaves a run that resumes
exactly, and the settings that cannot work are refused in one line."""

from __future__ import annotations

import csv
import json
import os
import signal
import tempfile
from pathlib import Path

import pytest

import nnexp
from conftest import compose_config, copy_run, read_summary, resume_in_process, start_then_signal
from nnexp.config.distributed_checks import check_distributed
from nnexp.config.machine_checks import check_gpu_count
from nnexp.errors import ConfigError, UserError

EPOCHS = 4  # the SIGTERM run stops after its first or second epoch: two or more are left to resume
# digits, an MLP without dropout (so the steps depend on the rows only), no pictures: seconds per run
COMMON = ("device=cpu", "model.dropout=0", f"trainer.epochs={EPOCHS}", "outputs.views=false")
TWO_RANKS = (*COMMON, "trainer.devices=2", "trainer.batch_size=32")


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory) -> Path:
    """A finished run on two ranks of batch 32, with its own TMPDIR so the ranks' scratch folders show."""
    root = tmp_path_factory.mktemp("two_ranks")
    scratch = root / "tmp"
    scratch.mkdir()
    before, tempdir_before = os.environ.get("TMPDIR"), tempfile.tempdir
    os.environ["TMPDIR"] = str(scratch)  # read by the ranks, which start after this
    tempfile.tempdir = str(scratch)  # and by this process, the ranks' launcher
    try:
        result = nnexp.run(list(TWO_RANKS), output_dir=root / "run")
    finally:
        tempfile.tempdir = tempdir_before
        if before is None:
            del os.environ["TMPDIR"]
        else:
            os.environ["TMPDIR"] = before
    assert result.status == "completed"
    assert list(scratch.glob("nnexp-rank-*")) == []  # the other rank's scratch folder is gone with it
    assert list(scratch.glob("nnexp-ranks-*")) == []  # and the launcher's logs (torch's own: never removed)
    assert list(scratch.glob("torchelastic_*")) == []
    return root / "run"


def _metrics(folder: Path) -> list[dict[str, str]]:
    """metrics.csv without its clock columns."""
    with open(folder / "metrics.csv", newline="") as rows:
        return [{k: v for k, v in row.items() if "seconds" not in k} for row in csv.DictReader(rows)]


def test_two_ranks_of_batch_32_train_as_one_process_of_batch_64(two_ranks, tmp_path):
    one = nnexp.run([*COMMON, "trainer.batch_size=64"], output_dir=tmp_path / "one")
    two = read_summary(two_ranks)
    assert two["world_size"] == 2 and "world_size" not in one.summary  # one process: not written
    one_loss, two_loss = one.metrics["train_loss"], two["metrics"]["final"]["train_loss"]
    assert abs(two_loss - one_loss) <= 0.01 * one_loss, (one_loss, two_loss)
    for one_row, two_row in zip(_metrics(one.run_dir), _metrics(two_ranks), strict=True):
        assert float(two_row["train_loss"]) == pytest.approx(float(one_row["train_loss"]), rel=1e-3)


def test_rank_0_alone_writes_the_run_folder(two_ranks):
    assert [row["epoch"] for row in _metrics(two_ranks)] == [str(n) for n in range(1, EPOCHS + 1)]
    log = (two_ranks / "nnexp.log").read_text()
    assert log.count(f"epoch 1/{EPOCHS} ") == 1  # one voice: the other rank logs no epoch lines
    assert log.count("starting 2 ranks") == 1


def test_a_sigterm_stops_both_ranks_at_a_checkpoint_and_the_run_resumes_exactly(two_ranks, tmp_path):
    folder = start_then_signal(tmp_path, signal.SIGTERM, 1, *TWO_RANKS)
    stopped = read_summary(folder)
    assert stopped["status"] == "interrupted" and stopped["world_size"] == 2
    assert stopped["epochs_completed"] < EPOCHS
    result = resume_in_process(folder)
    assert result.status == "completed"
    assert _metrics(folder) == _metrics(two_ranks)  # every metric of every epoch, to the last digit


def test_a_run_resumes_only_on_the_ranks_it_started_with(two_ranks, tmp_path):
    copy = copy_run(two_ranks, tmp_path / "copy")
    with pytest.raises(ConfigError, match="trained on 2 rank"):
        resume_in_process(copy, "trainer.devices=1", "trainer.epochs=5", "force=true")


def test_a_world_size_that_is_not_a_count_is_a_damaged_summary_not_a_traceback(two_ranks, tmp_path):
    copy = copy_run(two_ranks, tmp_path / "copy")
    summary = json.loads((copy / "summary.json").read_text())
    (copy / "summary.json").write_text(json.dumps({**summary, "world_size": "x"}))
    with pytest.raises(UserError, match="summary.json is damaged"):
        resume_in_process(copy, "trainer.devices=1", "trainer.epochs=5", "force=true")


def test_impossible_settings_are_refused_before_any_folder(tmp_path):
    with pytest.raises(ConfigError, match=r"trainer.devices=0 is not allowed") as refused:
        nnexp.run(["trainer.devices=0"], output_dir=tmp_path / "run")
    assert refused.value.exit_code == 2 and not (tmp_path / "run").exists()
    several = compose_config("trainer.devices=2", "trainer.num_nodes=2")
    with pytest.raises(ConfigError, match="MASTER_ADDR, MASTER_PORT, NODE_RANK"):
        check_distributed(several, {})
    check_distributed(several, {"MASTER_ADDR": "a", "MASTER_PORT": "1", "NODE_RANK": "0"})
    with pytest.raises(ConfigError, match="device=cuda:1"):
        check_distributed(compose_config("trainer.devices=2", "device.type=cuda:1"), {})
    with pytest.raises(ConfigError, match="has 1 GPU"):
        check_gpu_count(2, 1)


def test_more_cpu_processes_than_cores_is_refused_before_any_is_started(tmp_path):
    """A thousand ranks on the CPU would each load torch and fill the memory before the first step."""
    cores = len(os.sched_getaffinity(0))
    said = rf"may use {cores} core\(s\): use trainer.devices={cores} or fewer"
    with pytest.raises(ConfigError, match=said):
        nnexp.run(["device=cpu", "trainer.devices=1000"], output_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()
