"""look/'s writers for the end of a run: the views, the learning curves, the page, the lr range plot."""

from __future__ import annotations

from nnexp.look.page import write_run_page
from nnexp.look.plots import plot_lr_find, plot_run
from nnexp.look.views import per_class_view, write_views
from nnexp.runs.end_of_run import EndOfRun

DRAWN = EndOfRun(
    views=write_views,
    curves=plot_run,
    page=write_run_page,
    lr_find_plot=plot_lr_find,
    per_class=per_class_view,
)

__all__ = ["DRAWN"]
