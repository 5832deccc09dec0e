"""logger=wandb (issue 27): an offline Weights & Biases run inside the run folder holds what metrics.csv and
summary.json hold; no account and no network are involved; a missing package is one line.

(That nnexp imports wandb only when logger=wandb is chosen is test_dependencies.py's rule for an extra.)
"""

from __future__ import annotations

import csv
import json
import struct
from pathlib import Path

import pytest

import nnexp
from nnexp.errors import ConfigError
from nnexp.runs.loggers import build_loggers

pytest.importorskip("wandb")

QUICK = ["trainer.epochs=2", "trainer.max_batches_per_epoch=4", "outputs.views=false"]


@pytest.fixture(autouse=True)
def offline_wandb(monkeypatch, tmp_path):
    """wandb never reaches the network, says nothing, and keeps its own files under tmp_path."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    for name in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(name, str(tmp_path / "wandb_home"))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)


def wandb_records(path: Path) -> list[object]:
    """The protobuf records of an offline run's .wandb file: a 7-byte W&B header, then LevelDB's log
    format (32 KiB blocks of chunks, each a 7-byte header: checksum, length, type)."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    block, position, records, pending = 32768, 7, [], b""
    while position + 7 <= len(data):
        left = block - position % block
        _, length, kind = struct.unpack("<IHB", data[position : position + 7])
        if left < 7 or (kind == 0 and length == 0):  # the zero padding at a block's end
            position += left
            continue
        chunk = data[position + 7 : position + 7 + length]
        position += 7 + length
        pending = chunk if kind in (1, 2) else pending + chunk  # full, first | middle, last
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
    return records


def history_and_summary(path: Path) -> tuple[list[dict], dict]:
    """The run's history rows and its summary, keys as wandb shows them (nested keys joined by `/`)."""

    def named(items) -> dict:
        return {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in items}

    history, summary = [], {}
    for record in wandb_records(path):
        kind = record.WhichOneof("record_type")
        if kind == "history":
            history.append(named(record.history.item))
        elif kind == "summary":
            summary.update(named(record.summary.update))
    return history, summary


def test_an_offline_run_lives_in_the_run_folder_with_every_epoch_and_the_final_metrics(tmp_path):
    result = nnexp.run(
        [*QUICK, "logger=[csv,wandb]", "logger.wandb.mode=offline"], output_dir=tmp_path / "run"
    )
    [offline] = (result.run_dir / "wandb").glob("offline-run-*")
    [log_file] = offline.glob("run-*.wandb")
    run_id = (result.run_dir / "wandb" / "nnexp-run-id").read_text().strip()
    assert log_file.name == f"run-{run_id}.wandb"
    assert not (tmp_path / "wandb_home").exists() or not any((tmp_path / "wandb_home").rglob("*.wandb"))

    history, summary = history_and_summary(log_file)
    rows = list(csv.DictReader((result.run_dir / "metrics.csv").open()))
    assert [entry["_step"] for entry in history] == [1, 2]  # one step per epoch, as metrics.csv
    for column in ("train_loss", "val_loss", "val_accuracy"):
        assert history[-1][column] == pytest.approx(float(rows[-1][column]), rel=1e-9)
    final = json.loads((result.run_dir / "summary.json").read_text())["metrics"]["final"]
    assert {"val_accuracy", "test_accuracy"} <= set(final)
    for column, value in final.items():
        assert summary[f"final/{column}"] == pytest.approx(value, rel=1e-9)
    assert summary["status"] == "completed" and summary["epochs"] == 2


def test_the_config_goes_to_wandb_without_the_logger_section(tmp_path):
    from nnexp.api import compose

    cfg = compose(["logger=[csv,wandb]", "logger.wandb.name=try1", "optim.lr=0.05"])
    [logger] = build_loggers(cfg, tmp_path)
    try:
        assert logger.run.name == "try1" and logger.run.config["optim"]["lr"] == 0.05
        assert "logger" not in logger.run.config
    finally:
        logger.finish({"status": "completed", "metrics": {"final": {}}})
    assert list((tmp_path / "wandb").glob("offline-run-*/run-*.wandb"))


def test_a_missing_wandb_package_names_the_pip_command(monkeypatch, tmp_path):
    import importlib.util

    from nnexp.api import compose

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *args: None if name == "wandb" else real_find_spec(name, *args),
    )
    with pytest.raises(
        ConfigError, match=r"^logger=wandb needs the wandb package: pip install 'nnexp\[wandb\]'$"
    ):
        build_loggers(compose(["logger=[csv,wandb]"]), tmp_path)
    assert list(tmp_path.iterdir()) == []
