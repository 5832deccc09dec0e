"""What a run draws and writes about itself as it ends, handed in by whoever starts the run.

The pictures and the page are look/'s work, and look/ reads run folders back, so it sits above runs/: a
run is given its writers (the command line and nnexp.run give look/'s, in nnexp/look/end_of_run.py)
instead of importing them. A run given none (`NOTHING_DRAWN`) writes its records only: metrics,
summary, checkpoint.

The pictures are off the critical path: `views` writes the records (predictions.csv, the per-class
numbers) before the checkpoint; the results line and summary.json come next; only then are the pictures
drawn (`pictures` in a forked child where one can be, `curves` here meanwhile), timed into summary.json's
`pictures_time_s`, and the page written.
`training_starts` lets the drawing side prepare while the epochs run (look/ imports matplotlib then,
where a core is free for it).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nnexp.errors import OutputError
from nnexp.runs.folder import RunFolder
from nnexp.runs.summary import RunSummary
from nnexp.train.safeguards import StopOnSignal


@dataclass(frozen=True)
class EndOfRun:
    # (experiment, cfg, run folder) -> what the views add to summary.json (predictions.csv, per_class)
    views: Callable[[Any, Any, Path], dict[str, Any]]
    curves: Callable[[Path], Any]  # learning_curves.png from metrics.csv
    page: Callable[[Path], Any]  # report.html, last: it embeds every view written before it
    lr_find_plot: Callable[[Any, Path], Any]  # lr_find.png from an lr range test's result
    per_class: Callable[[dict[str, Any]], Any]  # the console's per-class table (a rich renderable)
    # begins the pictures of the views `views` recorded for this run folder, once its results are
    # written; returns None or what is drawing them (`.wait()`, `.cancel()`: look/views.py's Drawing)
    pictures: Callable[[Path], Any] = lambda _run_dir: None
    training_starts: Callable[[], Any] = lambda: None  # as the epochs begin: prepare to draw (imports)
    draws: bool = False  # whether there are pictures at all, so summary.json times them


def _nothing(*_args: Any) -> None:
    return None


NOTHING_DRAWN = EndOfRun(
    views=lambda *_args: {}, curves=_nothing, page=_nothing, lr_find_plot=_nothing, per_class=_nothing
)


def draw_pictures(
    end: EndOfRun, folder: RunFolder, summary: RunSummary, stop: StopOnSignal, started: float
) -> OutputError | None:
    """The views' pictures and the learning curves, once summary.json holds the results; their time goes
    into summary.json (`pictures_time_s`, and the wall time). Returns a refused write of the summary.

    A stop signal now stops at once: the records are whole and each picture is written whole or not at
    all, so the folder is complete but for the pictures not yet drawn (a resume writes the page)."""
    if stop.requested is None:
        stop.at_once()
    elif summary.status == "completed":
        # Asked for after the last batch boundary, as the run ended: its records are whole, so it stops
        # now, as it would have at once. (A run already stopping keeps its own answer.)
        stop.check()
    drawing = time.perf_counter()
    views = end.pictures(folder.path)  # begun in a child where one can be forked (look/views.py)
    try:
        end.curves(folder.path)  # meanwhile, here
        if views is not None:
            views.wait()
    except BaseException:  # a stop at once: the child's picture in hand is removed whole, not half-written
        if views is not None:
            views.cancel()
        raise
    if not end.draws:
        return None
    summary.drew_pictures_in(time.perf_counter() - drawing)
    summary.ran_for(time.time() - started)
    try:
        folder.write_summary(summary)
    except OutputError as error:
        return error
    return None


__all__ = ["NOTHING_DRAWN", "EndOfRun", "draw_pictures"]
