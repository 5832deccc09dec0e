"""The student's front door: the example notebooks run top to bottom and show a run inline, a run shows itself
safely in Jupyter, the README stays short, and the docs site builds with every page in its nav."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import nnexp
from nnexp.runs.result import RunResult

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
NOTEBOOKS = ["first_hour.ipynb", "lectures_side_by_side.ipynb"]


def test_the_notebooks_are_what_make_notebooks_writes(tmp_path):
    """The .ipynb files are generated (examples/make_notebooks.py): an edit by hand would be lost."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_notebooks", EXAMPLES / "make_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.HERE = tmp_path  # this module's own copy: the checkout's notebooks are left as they are
    module.main()
    for name in NOTEBOOKS:
        assert (tmp_path / name).read_text() == (EXAMPLES / name).read_text(), name


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_each_notebook_runs_top_to_bottom_offline_and_shows_a_run_inline(tmp_path, name):
    """Executed as `jupyter nbconvert --execute` does (nbclient, a fresh python3 kernel), in a folder of its
    own; a run shows inline as HTML holding its learning curves as an embedded PNG."""
    import nbformat
    from nbclient import NotebookClient

    shutil.copy(EXAMPLES / name, tmp_path / name)
    book = nbformat.read(tmp_path / name, as_version=4)
    NotebookClient(
        book, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    errors = [out for cell in book.cells for out in cell.get("outputs", []) if out["output_type"] == "error"]
    assert errors == []
    shown = [
        out["data"]["text/html"]
        for cell in book.cells
        for out in cell.get("outputs", [])
        if out["output_type"] == "execute_result" and "text/html" in out.get("data", {})
    ]
    runs = [page for page in shown if "class='nnexp-run'" in page]
    assert runs, "no run was shown inline"
    assert all(
        "<img src='data:image/png;base64,iVBORw0KGgo" in page and "learning_curves.png" in page
        for page in runs
    )
    assert (tmp_path / "outputs" / "latest" / "summary.json").is_file()  # the runs were written here


def test_a_run_shows_itself_in_jupyter_with_its_pictures_inline(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = nnexp.run(["debug=smoke", "diagnostics.enabled=false"])
    page = result._repr_html_()
    curves = (result.run_dir / "learning_curves.png").read_bytes()
    import base64

    assert base64.b64encode(curves).decode() in page  # the very picture of the run folder
    assert f"{result.metrics['test_accuracy']:.4g}" in page and html.escape(str(result.run_dir)) in page
    title = re.search(r"<title>(.*?)</title>", (result.run_dir / "report.html").read_text(), flags=re.S)
    assert f"<h3>{title.group(1).strip()}</h3>" in page  # what ran, as its page names it


def test_what_a_run_folder_holds_shows_as_text_and_no_script(tmp_path):
    """A shared run folder may hold anything: names and a page title become text, never markup."""
    hostile = "<script>alert(1)</script><img src=x onerror=alert(2)>"
    folder = tmp_path / f"run{hostile.replace('/', '_')}"
    folder.mkdir()
    (folder / "report.html").write_text(f"<html><head><title>{html.escape(hostile)}</title></head></html>")
    (folder / "learning_curves.png").write_text("not a picture but bytes")
    result = RunResult(folder, hostile, {hostile: 1.0}, {}, None)
    page = result._repr_html_()
    allowed = {"div", "h3", "p", "code", "table", "tr", "th", "td", "figure", "img", "figcaption"}
    assert set(re.findall(r"<(\w+)", page)) <= allowed  # <script>, <img onerror> from the data: text
    assert page.count("<img ") == 1 and html.escape(hostile) in page


def test_the_readme_is_a_front_door_of_at_most_300_lines():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 300


def test_every_docs_page_is_in_the_sites_nav_and_every_nav_entry_exists():
    import yaml

    site = yaml.safe_load((ROOT / "mkdocs.yml").read_text())

    def pages(entries) -> list[str]:
        found = []
        for entry in entries:
            for value in entry.values() if isinstance(entry, dict) else [entry]:
                found += pages(value) if isinstance(value, list) else [value]
        return found

    listed = pages(site["nav"])
    on_disk = sorted(path.relative_to(ROOT / "docs").as_posix() for path in (ROOT / "docs").rglob("*.md"))
    assert sorted(listed) == on_disk and len(listed) == len(set(listed))


@pytest.mark.skipif(shutil.which("mkdocs") is None, reason="no mkdocs: pip install -e '.[docs]'")
def test_the_docs_site_builds_strictly(tmp_path):
    """`mkdocs build --strict`, as .ci/run runs it: a broken link or anchor fails."""
    built = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    assert (tmp_path / "site" / "index.html").is_file()
    assert (tmp_path / "site" / "promises" / "index.html").is_file()


def test_the_notebooks_are_valid_and_have_no_stored_outputs():
    for name in NOTEBOOKS:
        book = json.loads((EXAMPLES / name).read_text())
        assert book["nbformat"] == 4
        assert all(not cell.get("outputs") for cell in book["cells"] if cell["cell_type"] == "code")
