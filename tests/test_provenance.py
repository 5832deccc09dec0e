"""summary.json says where a run ran, so runs from different machines can be compared."""

from __future__ import annotations

import platform

import torch

import nnexp
from conftest import read_summary


def test_a_run_records_its_versions_device_and_threads(tmp_path):
    """torch, CUDA and cuDNN versions (None on a CPU-only torch), Python, the device and GPUs it saw,
    and the threads it trained with: trainer.threads when given."""
    overrides = ["debug=smoke", "device=cpu", "trainer.threads=1"]
    folder = nnexp.run(overrides, output_dir=tmp_path / "run").run_dir
    recorded = read_summary(folder)["provenance"]
    assert recorded["python"] == platform.python_version()
    assert recorded["torch"] == torch.__version__
    assert recorded["cuda"] == torch.version.cuda
    assert set(recorded) >= {"cudnn", "platform", "device_name", "gpu_count", "cpu_count"}
    if torch.version.cuda is None:
        assert recorded["cudnn"] is None
    assert recorded["gpu_count"] == (torch.cuda.device_count() if torch.cuda.is_available() else 0)
    assert isinstance(recorded["device_name"], str) and recorded["device_name"]
    assert recorded["threads"] == 1
