"""What a data file is, whatever its name says: a compressed file or a workbook is refused by name."""

from __future__ import annotations

from pathlib import Path

from nnexp.errors import DataError

COMPRESSED = {
    b"\x1f\x8b": "gzip",
    b"PK\x03\x04": "zip (an Excel workbook?)",
    b"BZh": "bzip2",
    b"\xfd7zXZ": "xz",
}


def refuse_compressed(path: Path, named: str, then: str) -> None:
    """DataError when `path` starts as a compressed file or archive does; `then` says what to give."""
    with Path(path).open("rb") as handle:
        start = handle.read(6)
    for magic, kind in COMPRESSED.items():
        if start.startswith(magic):
            raise DataError(f"{named} is a {kind} file: decompress it, then {then}")
