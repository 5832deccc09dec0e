"""What a run draws and writes about itself as it ends, handed in by whoever starts the run.

The pictures and the page are look/'s work, and look/ reads run folders back, so it sits above runs/: a
run is given its writers (the command line and nnexp.run give look/'s, in nnexp/look/end_of_run.py)
instead of importing them. A run given none (`NOTHING_DRAWN`) writes its records only: metrics,
summary, checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class EndOfRun:
    # (experiment, cfg, run folder) -> what the views add to summary.json (predictions.csv, pictures)
    views: Callable[[Any, Any, Path], dict[str, Any]]
    curves: Callable[[Path], Any]  # learning_curves.png from metrics.csv
    page: Callable[[Path], Any]  # report.html, last: it embeds every view written before it
    lr_find_plot: Callable[[Any, Path], Any]  # lr_find.png from an lr range test's result
    per_class: Callable[[dict[str, Any]], Any]  # the console's per-class table (a rich renderable)


def _nothing(*_args: Any) -> None:
    return None


NOTHING_DRAWN = EndOfRun(
    views=lambda *_args: {}, curves=_nothing, page=_nothing, lr_find_plot=_nothing, per_class=_nothing
)

__all__ = ["NOTHING_DRAWN", "EndOfRun"]
