"""Files the tools write, whole or not at all: a reader, or a stop half-way, never sees half a file."""

from __future__ import annotations

import os
from pathlib import Path


def write_whole(path: Path, text: str) -> None:
    """Write `text` beside `path`, then move it into place; stopped half-way, nothing is left."""
    partial = Path(path).with_name(f".{Path(path).name}.{os.getpid()}.tmp")
    try:
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
