"""A run's views are drawn in a forked child while its learning curves, then its last view, are drawn in
the run's process (nnexp/forked.py, look/views.py's Drawing): the same files, their warnings in the
run's log, and a stop that leaves no child and no half-written file behind."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

import nnexp
from nnexp.look import plots, views

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")

SMALL = ["trainer.epochs=1", "model.hidden=[8]"]


def _writes_its_pid(model, spec_or_data, path: Path, headline: str) -> Path:
    """Stands in for a view: writes which process drew it, and the run's status when it was drawn."""
    status = json.loads((path.parent / "summary.json").read_text())["status"]
    path.write_text(json.dumps({"pid": os.getpid(), "status_then": status}))
    return path


def test_the_views_are_drawn_in_another_process_and_the_curves_and_the_last_view_here(tmp_path, monkeypatch):
    monkeypatch.setattr(views, "_weights", _writes_its_pid)  # the digits' views: confusion ... weights
    monkeypatch.setattr(views, "save_activations", _writes_its_pid)  # then activations, the last

    def curves_write_their_pid(run_dir: Path) -> None:
        (run_dir / "curves.pid").write_text(str(os.getpid()))

    monkeypatch.setattr(plots, "save_learning_curves", curves_write_their_pid)
    run = nnexp.run(SMALL, output_dir=tmp_path / "run").run_dir
    in_the_child = json.loads((run / "weights.png").read_text())
    assert in_the_child["pid"] != os.getpid()
    assert in_the_child["status_then"] == "completed"  # the results are on disk before any picture
    assert int((run / "curves.pid").read_text()) == os.getpid()
    assert json.loads((run / "activations.png").read_text())["pid"] == os.getpid()
    for picture in ("confusion_matrix.png", "predictions.png", "top_losses.png"):
        assert (run / picture).read_bytes().startswith(b"\x89PNG")
    assert "weights.png" in (run / "report.html").read_text()


def test_a_picture_that_fails_in_the_child_is_a_warning_in_the_runs_log(tmp_path, monkeypatch):
    def fails(*_args):
        raise ValueError("the layer has no outputs")

    monkeypatch.setattr(views, "_weights", fails)  # drawn in the child
    result = nnexp.run(SMALL, output_dir=tmp_path / "run")
    assert result.status == "completed"
    log = (result.run_dir / "nnexp.log").read_text()
    assert "could not write weights.png: the layer has no outputs" in log
    assert not (result.run_dir / "weights.png").exists()


def test_a_stop_while_the_child_draws_stops_it_and_leaves_no_half_written_file(tmp_path, monkeypatch):
    def hangs(model, spec, path: Path, headline: str) -> None:
        (tmp_path / "child.pid").write_text(str(os.getpid()))
        from nnexp.atomic import write_atomically

        write_atomically(path, lambda file: (file.write(b"\x89PNG half"), signal.pause()))

    def stop_once_the_child_is_drawing(run_dir: Path) -> None:
        deadline = time.monotonic() + 120
        while not (tmp_path / "child.pid").exists():  # what the child writes, not a number of seconds
            assert time.monotonic() < deadline, "the views were not drawn in a child"
            time.sleep(0.01)
        raise KeyboardInterrupt  # as a Ctrl-C answered at once while the pictures are drawn

    monkeypatch.setattr(views, "_weights", hangs)  # drawn in the child
    monkeypatch.setattr(plots, "save_learning_curves", stop_once_the_child_is_drawing)
    with pytest.raises(KeyboardInterrupt):
        nnexp.run(SMALL, output_dir=tmp_path / "run")
    child = int((tmp_path / "child.pid").read_text())
    with pytest.raises(ChildProcessError):
        os.waitpid(child, os.WNOHANG)  # stopped and reaped: no zombie
    run = tmp_path / "run"
    assert not (run / "weights.png").exists()
    assert [path.name for path in run.iterdir() if path.name.endswith(".tmp")] == []
