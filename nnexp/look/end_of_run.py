"""look/'s writers for the end of a run: the views, the learning curves, the page, the lr range plot.

The views' pictures wait until the run has written its results (nnexp/runs/end_of_run.py says the order).
"""

from __future__ import annotations

from nnexp.look.canvas import import_in_background
from nnexp.look.page import write_run_page
from nnexp.look.plots import plot_lr_find, plot_run
from nnexp.look.views import draw_views, per_class_view, view_records
from nnexp.runs.end_of_run import EndOfRun

DRAWN = EndOfRun(
    views=view_records,  # the records now; the pictures once the run's results are written
    curves=plot_run,
    page=write_run_page,
    lr_find_plot=plot_lr_find,
    per_class=per_class_view,
    pictures=draw_views,
    training_starts=import_in_background,  # matplotlib's import overlaps the epochs
    draws=True,
)

__all__ = ["DRAWN"]
