"""The one way nnexp writes a whole file (nnexp/atomic.py): whole or not at all, never a temporary left."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nnexp import atomic
from nnexp.atomic import leftover_temporaries, write_atomically


def test_a_stop_that_lands_as_the_temporary_is_created_leaves_no_temporary(tmp_path, monkeypatch):
    """A signal's SystemExit runs in the main thread between any two steps, whichever thread the signal
    reached (masking it in the main thread does not hold it back): here, just after the file exists."""
    real_open = os.open

    def created_then_stopped(path, *args, **kwargs):
        descriptor = real_open(path, *args, **kwargs)
        if str(path).endswith(atomic.TEMPORARY_SUFFIX):
            os.close(descriptor)
            raise SystemExit(130)
        return descriptor

    target = write_atomically(tmp_path / "report.csv", "old\n")
    monkeypatch.setattr(os, "open", created_then_stopped)
    with pytest.raises(SystemExit):
        write_atomically(target, "new\n")
    assert leftover_temporaries(tmp_path) == []
    assert target.read_text() == "old\n"


def test_another_writers_temporary_is_left_alone_and_another_name_taken(tmp_path, monkeypatch):
    names = iter(["aaaaaaaa", "bbbbbbbb"])
    monkeypatch.setattr(atomic.secrets, "token_hex", lambda _: next(names))
    theirs = tmp_path / ".page.html.aaaaaaaa.tmp"
    theirs.write_text("another process is writing this")
    write_atomically(tmp_path / "page.html", "<p>mine</p>")
    assert theirs.read_text() == "another process is writing this"
    assert (tmp_path / "page.html").read_text() == "<p>mine</p>"
    assert sorted(path.name for path in Path(tmp_path).iterdir()) == [theirs.name, "page.html"]
