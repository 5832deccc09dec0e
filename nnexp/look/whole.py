"""Files the tools write, whole or not at all: a reader, or a stop half-way, never sees half a file."""

from __future__ import annotations

from pathlib import Path

from nnexp.atomic import write_atomically


def write_whole(path: Path, text: str) -> None:
    """Write `text` beside `path`, then move it into place; stopped half-way, nothing is left."""
    write_atomically(path, text)
