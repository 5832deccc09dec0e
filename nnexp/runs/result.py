"""What one run hands back: its folder, how it ended, its final metrics, its summary and its model."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn


@dataclass
class RunResult:
    run_dir: Path
    status: str
    metrics: dict[str, float]  # final values, e.g. test_accuracy
    summary: dict[str, Any]  # summary.json's dict, as written last (RunSummary.to_json())
    model: nn.Module | None = field(default=None, repr=False)


__all__ = ["RunResult"]
