"""look/canvas.py draws a line of plain text as one bitmap (matplotlib 3.11 draws it glyph by glyph from
Python, a third of a run's picture time): the text must land where matplotlib's own drawing puts it,
whatever its rotation and alignment, with the same ink. Each text is drawn alone on a white figure, by
nnexp's canvas and by matplotlib's plain Agg canvas, and the two pictures are read back and compared."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from nnexp.look import canvas

TEXTS = [  # (text, rotation, horizontal alignment, vertical alignment, size)
    ("highest losses (test): #index predicted, true label", 0, "center", "top", 12),
    ("airplane", 45, "right", "top", 10),
    ("accuracy", 90, "center", "center", 10),
    ("#108 1\ntrue: 8\n3.69 / 0.97", 0, "center", "bottom", 8),
    ("café, naïve, Ω", 0, "left", "baseline", 11),
]


def _drawn(text: str, rotation: float, ha: str, va: str, size: float, ours: bool) -> np.ndarray:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if ours:
        figure = canvas.new_figure(figsize=(5, 2.5))
    else:
        figure = Figure(figsize=(5, 2.5))
        FigureCanvasAgg(figure)
    figure.text(0.5, 0.5, text, rotation=rotation, ha=ha, va=va, fontsize=size)
    picture = Image.open(io.BytesIO(canvas.png_bytes(figure))).convert("L")
    return 255 - np.asarray(picture, dtype=float)  # ink


def _box(ink: np.ndarray) -> tuple[int, int, int, int]:
    rows, columns = np.nonzero(ink > 64)
    return rows.min(), rows.max(), columns.min(), columns.max()


@pytest.mark.parametrize(("text", "rotation", "ha", "va", "size"), TEXTS)
def test_plain_text_lands_where_matplotlib_draws_it_with_the_same_ink(text, rotation, ha, va, size):
    ours = _drawn(text, rotation, ha, va, size, ours=True)
    theirs = _drawn(text, rotation, ha, va, size, ours=False)
    assert ours.shape == theirs.shape
    assert np.allclose(_box(ours), _box(theirs), atol=2)  # in pixels: rounding to whole pixels, not more
    assert ours.sum() == pytest.approx(theirs.sum(), rel=0.05)


def test_a_new_figure_draws_its_text_whole_where_matplotlib_draws_it_glyph_by_glyph():
    from matplotlib.backends.backend_agg import RendererAgg

    figure = canvas.new_figure(figsize=(2, 1))
    figure.text(0.5, 0.5, "epoch")
    canvas.png_bytes(figure)
    fast = "draw_text" in vars(figure.canvas.get_renderer())
    assert fast == hasattr(RendererAgg, "_draw_text_glyphs_and_boxes")
    assert type(figure.canvas).__name__ == "FigureCanvasAgg"


def test_mathtext_is_still_drawn_by_matplotlib():
    ours = _drawn(r"$x^2 + \alpha$ loss", 0, "center", "center", 12, ours=True)
    theirs = _drawn(r"$x^2 + \alpha$ loss", 0, "center", "center", 12, ours=False)
    assert np.array_equal(ours, theirs)


def test_a_matplotlib_whose_private_calls_changed_draws_its_own_text(monkeypatch):
    from matplotlib.ft2font import FT2Font

    def changed(*_args, **_kwargs):
        raise TypeError("draw_glyphs_to_bitmap() takes no arguments")

    canvas.new_figure()  # matplotlib imported, the check made
    monkeypatch.setattr(canvas, "_fast_text", True)  # and set back after the test
    monkeypatch.setattr(FT2Font, "draw_glyphs_to_bitmap", changed)
    ours = _drawn("epoch", 0, "center", "center", 10, ours=True)
    assert canvas._fast_text is False  # said once: matplotlib's own drawing from then on
    assert np.array_equal(ours, _drawn("epoch", 0, "center", "center", 10, ours=False))
