"""What one run hands back: its folder, how it ended, its final metrics, its summary and its model.

In Jupyter the result shows itself (`_repr_html_`): what ran, how it ended, the final metrics and the run's
key pictures as inline `data:` images, read from the run folder. Every text is escaped and nothing is
scripted, so a run folder of any name or content shows as data.
"""

from __future__ import annotations

import base64
import html
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

# The pictures a notebook shows, in this order, those present; report.html has every one.
KEY_FIGURES = (
    "learning_curves.png",
    "decision_boundary.png",
    "fit.png",
    "confusion_matrix.png",
    "weights.png",
)
MAX_FIGURES = 3
_MAX_FIGURE_BYTES = 4_000_000  # a picture larger than this stays in the folder (report.html shows it)


@dataclass
class RunResult:
    run_dir: Path
    status: str
    metrics: dict[str, float]  # final values, e.g. test_accuracy
    summary: dict[str, Any]  # summary.json's dict, as written last (RunSummary.to_json())
    model: nn.Module | None = field(default=None, repr=False)

    def _repr_html_(self) -> str:
        """The run's page in brief, for Jupyter: headline, status, metrics, key pictures."""
        folder = Path(self.run_dir)
        headline = _headline(folder)
        if self.status not in headline:  # the page's title says how the run ended; a folder name does not
            headline = f"{headline} ({self.status})"
        parts = [
            "<div class='nnexp-run'>",
            f"<h3>{_text(headline)}</h3>",
            f"<p><code>{_text(folder)}</code>: open <code>report.html</code> there for the whole page</p>",
        ]
        rows = "".join(
            f"<tr><td>{_text(name)}</td><td>{_text(_number(value))}</td></tr>"
            for name, value in sorted(self.metrics.items())
        )
        if rows:
            parts.append(f"<table><tr><th>metric</th><th>final</th></tr>{rows}</table>")
        for name in _figures(folder):
            data = base64.b64encode((folder / name).read_bytes()).decode("ascii")
            parts.append(
                f"<figure><img src='data:image/png;base64,{data}' alt='{_text(name)}' "
                f"style='max-width:100%'><figcaption>{_text(name)}</figcaption></figure>"
            )
        parts.append("</div>")
        return "\n".join(parts)


def _headline(folder: Path) -> str:
    """report.html's title (what ran, as nnexp-report and the page name it), else the folder's name."""
    try:
        page = (folder / "report.html").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return folder.name
    found = re.search(r"<title>(.*?)</title>", page, flags=re.S)
    return html.unescape(found.group(1)).strip() if found else folder.name


def _figures(folder: Path) -> list[str]:
    present = []
    for name in KEY_FIGURES:
        path = folder / name
        if path.is_file() and not path.is_symlink() and path.stat().st_size <= _MAX_FIGURE_BYTES:
            present.append(name)
    return present[:MAX_FIGURES]


def _number(value: Any) -> str:
    if isinstance(value, float) and math.isfinite(value):
        return f"{value:.4g}"
    return str(value)


def _text(value: Any) -> str:
    return html.escape(str(value), quote=True)


__all__ = ["KEY_FIGURES", "RunResult"]
