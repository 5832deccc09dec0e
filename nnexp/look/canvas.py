"""matplotlib without pyplot's global state: each figure on its own Agg canvas, drawn once into PNG bytes.

A run's pictures are drawn after its results are recorded. Importing matplotlib is most of the first
picture's cost (~0.5 s, against ~0.05 s to draw a small figure), so where a core is free for it
`import_in_background()` starts it in a thread as training starts, and `new_figure()` waits for that thread
before anything is drawn: matplotlib is never used by two threads at once, only imported (Python's import
locks make that safe).

Text is most of what drawing a picture costs; matplotlib 3.11 draws it glyph by glyph from Python, so a
canvas made here draws each plain line as one bitmap, laid out by the call that measured it (`_draw_text`).

pyplot is never imported: no figure manager keeps a figure alive after its PNG is written, nor can a
backend chosen by a user's matplotlibrc (a display) be picked up.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import threading
from pathlib import Path
from typing import Any

from nnexp.atomic import write_atomically
from nnexp.forked import finish_before_forking

log = logging.getLogger("nnexp")

DPI = 100
FAST_PNG = {"compress_level": 1}  # zlib's fastest: a fifth of the encoding time, files a little larger
# What drawing a run's pictures imports: the figure and its Agg canvas, and what the views use besides
NEEDED = (
    "matplotlib.figure",
    "matplotlib.backends.backend_agg",
    "matplotlib.patches",
    "matplotlib.ticker",
    "matplotlib.collections",
    "matplotlib.lines",
)

_importing: threading.Thread | None = None


def import_in_background() -> None:
    """Start importing matplotlib in a daemon thread, once per process, when a core is free for it.

    Called when training starts, so the import overlaps the epochs. With torch's threads on every core it
    is not started: the thread then takes turns with the epochs on the cores (and the GIL), and the
    default run on 2 cores took 11.2 s with it against 10.1 s without (benchmarks/RESULTS.md, "Drawing off
    the critical path"). A failed import is left for the first picture to report."""
    global _importing
    if _importing is not None or NEEDED[1] in sys.modules or not _a_core_is_free():
        return
    _importing = threading.Thread(target=_import_quietly, name="nnexp-import-matplotlib", daemon=True)
    _importing.start()
    finish_before_forking(_importing)  # the views' pictures are drawn in a forked child (look/views.py)


def _a_core_is_free() -> bool:
    """Whether this process may run on more cores than torch's threads use (torch is loaded by now)."""
    torch = sys.modules.get("torch")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return torch is not None and cores > torch.get_num_threads()


def _import_quietly() -> None:
    with contextlib.suppress(Exception):  # said by whichever picture needs it first, in its own warning
        _import_needed()


def _import_needed() -> None:
    import importlib

    for name in NEEDED:
        importlib.import_module(name)


def _ready() -> None:
    """Wait for the background import, if one was started; then matplotlib is this thread's alone."""
    if _importing is not None and _importing.is_alive() and _importing is not threading.current_thread():
        _importing.join()
    _import_needed()  # imported already: a look-up each; after a failed background import, it raises here


def new_figure(**options: Any) -> Any:
    """A matplotlib Figure (`figsize=...`, `layout=...`) with its own Agg canvas, known to no pyplot."""
    _ready()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(**options)
    agg = FigureCanvasAgg(figure)
    if _text_as_one_bitmap():
        plain = agg.get_renderer
        agg.get_renderer = lambda: _with_fast_text(plain())  # draw() asks for it: its text drawn whole
    return figure


_fast_text: bool | None = None


def _text_as_one_bitmap() -> bool:
    """Whether this matplotlib's fonts can lay out and draw a line in one call (`_draw_text`)."""
    global _fast_text
    if _fast_text is None:
        from matplotlib.backends.backend_agg import RendererAgg
        from matplotlib.ft2font import FT2Font

        needed = ("set_text", "draw_glyphs_to_bitmap", "get_image", "get_bitmap_offset", "get_descent")
        glyph_by_glyph = hasattr(RendererAgg, "_draw_text_glyphs_and_boxes")  # 3.11; 3.10 drew it whole
        _fast_text = glyph_by_glyph and all(hasattr(FT2Font, name) for name in needed)
    return _fast_text


def _with_fast_text(renderer: Any) -> Any:
    if "draw_text" not in vars(renderer):  # the canvas keeps its renderer while the size stays
        renderer.draw_text = _draw_text.__get__(renderer)
    return renderer


def _draw_text(renderer: Any, gc: Any, x: float, y: float, s: str, prop: Any, angle: float,
               ismath: Any = False, mtext: Any = None) -> None:  # fmt: skip
    """A line of plain text drawn as one bitmap, as matplotlib 3.10 drew it, where 3.11 draws each glyph
    from Python: a third of the pictures' time (benchmarks/RESULTS.md). The text is laid out by the same
    call that measured it (`set_text`), so it lands where its extent says. Mathtext, and text with font
    features or a language of its own, go to matplotlib's own `draw_text`."""
    import math

    from matplotlib.backends.backend_agg import RendererAgg, get_hinting_flag

    global _fast_text
    special = mtext is not None and (mtext.get_fontfeatures() is not None or mtext.get_language() is not None)
    if not (ismath or special or _fast_text is False):
        try:
            font = renderer._prepare_font(prop)
            font.set_text(s, 0, flags=get_hinting_flag())  # angle 0: the bitmap is rotated as it is drawn
            font.draw_glyphs_to_bitmap(antialiased=gc.get_antialiased())
            descent = font.get_descent() / 64.0
            x_offset, y_offset = (offset / 64.0 for offset in font.get_bitmap_offset())
            x_at = round(x + x_offset + descent * math.sin(math.radians(angle)))
            y_at = round(y + y_offset + descent * math.cos(math.radians(angle)))
            renderer._renderer.draw_text_image(font.get_image(), x_at, y_at + 1, angle, gc)
            return
        except (AttributeError, TypeError, ValueError):  # a matplotlib whose private calls changed
            _fast_text = False  # its own drawing from now on; nothing was drawn yet
    RendererAgg.draw_text(renderer, gc, x, y, s, prop, angle, ismath=ismath, mtext=mtext)


def subplots(rows: int = 1, columns: int = 1, **options: Any) -> tuple[Any, Any]:
    """pyplot.subplots's (figure, axes) without pyplot: `figsize`, `layout` go to the figure, the rest
    (`squeeze`, `sharex`, ...) to Figure.subplots."""
    figure_keys = ("figsize", "layout", "dpi", "facecolor")
    figure = new_figure(**{key: value for key, value in options.items() if key in figure_keys})
    axes = figure.subplots(rows, columns, **{k: v for k, v in options.items() if k not in figure_keys})
    return figure, axes


def colour_map(name: str) -> Any:
    _ready()
    import matplotlib

    return matplotlib.colormaps[name]


def png_bytes(figure: Any, dpi: float = DPI) -> bytes:
    """The figure drawn once, as PNG bytes (fastest compression)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, pil_kwargs=FAST_PNG)
    return buffer.getvalue()


def save_png(figure: Any, path: Path, dpi: float = DPI) -> Path:
    """The figure drawn once and written whole (a stop during the write leaves no half picture); not
    fsynced: a picture lost to a power cut is drawn again from the records, which are."""
    write_atomically(Path(path), png_bytes(figure, dpi), durable=False)
    return Path(path)


__all__ = ["DPI", "FAST_PNG", "colour_map", "import_in_background", "new_figure", "png_bytes", "save_png",
           "subplots"]  # fmt: skip
