"""Run folders are untrusted data (issue 23): people share them, and a folder may be named anything.

A sweep is written here with run folders named `javascript:document.title='pwned';1`, `javascript:alert(1)`
and `<img src=x onerror=document.title='pwned'>`, hostile overrides, config values and metric names. The
pages nnexp writes from it must run nothing of it:

- in Python, the pages are parsed: every link is a relative path (no scheme, no host) that leads to the run's
  own report.html, every image is embedded, no tag or attribute comes from the data, and every page carries
  a Content-Security-Policy that allows only its own script, by the SHA-256 of the script it holds;
- in headless Chromium, driven over the DevTools protocol (`--remote-debugging-pipe`), each hostile run's
  link is clicked with a real mouse event: the browser opens that run's report.html and no script of the
  data runs (the title stays, no dialog opens); a control shows the same click on a hand-written
  `javascript:` link does run it, so the check can see a script run. A copy of the page with an inline
  handler and a `javascript:` link slipped in shows that the policy alone stops them.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import html
import json
import os
import select
import shutil
import subprocess
import sys
import time
import urllib.parse
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from test_report import fake_run

from nnexp.look.page import PAGE_FILE, write_run_page
from nnexp.look.plots import save_learning_curves
from nnexp.look.report import main as report_main
from nnexp.look.sweep_page import SORT_SCRIPT, SORT_SCRIPT_SOURCE
from nnexp.look.what_ran import what_ran

PWNED = "pwned"
JS_TITLE = f"javascript:document.title='{PWNED}';1"  # `1/report.html` after it: the title is set first
JS_ALERT = "javascript:alert(1)"
IMG = f"<img src=x onerror=document.title='{PWNED}'>"
ODD = "$\\frac{$ a%41 b#c?d"  # TeX for matplotlib; %, space, # and ? must lead back to the folder
HOSTILE_RUNS = (JS_TITLE, JS_ALERT, IMG, ODD)
SCRIPT_TAG = f"<script>document.title='{PWNED}'</script>"
BAD_METRIC = f"val_<b onmouseover=document.title='{PWNED}'>x</b>"
# The tags nnexp's pages are made of; anything else would have come from the data.
PAGE_TAGS = {"html", "head", "meta", "title", "style", "body", "h1", "h2", "p", "span", "table", "thead",
             "tbody", "tr", "th", "td", "a", "figure", "img", "figcaption", "div", "details", "summary",
             "pre", "code", "script"}  # fmt: skip


@pytest.fixture
def hostile_sweep(tmp_path: Path) -> Path:
    """A sweep whose run folders, overrides, config values and a metric name are each an attack."""
    root = tmp_path / "multirun" / "2026-01-01" / "10-00-00"
    names = ["0", *HOSTILE_RUNS]
    for index, name in enumerate(names):
        run = fake_run(root / name, [f"optim.lr=0.{index + 1}", f"model.name={SCRIPT_TAG}{index}",
                                     f"note=$\\frac{{${index}"], 0.5 + 0.1 * index)  # fmt: skip
        (run / ".hydra" / "config.yaml").write_text(f'note: "</pre>{SCRIPT_TAG}"\n')
        summary = json.loads((run / "summary.json").read_text())
        summary["metrics"]["final"][BAD_METRIC] = 0.5
        (run / "summary.json").write_text(json.dumps(summary))
        assert save_learning_curves(run) == run / "learning_curves.png"  # titled with its overrides
        write_run_page(run)
    return root


class Page(HTMLParser):
    """A page as a browser's parser reads it: its tags and their attributes, its scripts, styles and text."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.scripts: list[str] = []
        self.styles: list[str] = []
        self.text: list[str] = []
        self._inside: str | None = None
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {name: value or "" for name, value in attrs}))
        self._inside = tag if tag in ("script", "style") else None

    def handle_endtag(self, tag: str) -> None:
        self._inside = None

    def handle_data(self, data: str) -> None:
        if self._inside == "script":
            self.scripts.append(data)
        elif self._inside == "style":
            self.styles.append(data)
        else:
            self.text.append(data)

    def attributes(self, tag: str, name: str) -> list[str]:
        return [attrs[name] for found, attrs in self.tags if found == tag and name in attrs]

    def policy(self) -> dict[str, list[str]]:
        [meta] = [attrs for tag, attrs in self.tags if attrs.get("http-equiv") == "Content-Security-Policy"]
        return {name: values for name, *values in (part.split() for part in meta["content"].split(";"))}


def source_of(text: str) -> str:
    return f"'sha256-{base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()}'"


def sweep_page_of(sweep: Path) -> tuple[Path, str]:
    assert report_main([str(sweep), "--html", "--plot"]) == 0
    return sweep / PAGE_FILE, (sweep / PAGE_FILE).read_text()


def test_every_link_is_a_relative_path_to_the_runs_own_page_and_every_image_is_embedded(hostile_sweep):
    page_path, page = sweep_page_of(hostile_sweep)
    links = Page(page).attributes("a", "href")
    assert len(links) == 1 + len(HOSTILE_RUNS)
    for href in links:
        parts = urllib.parse.urlsplit(href)
        assert (parts.scheme, parts.netloc, parts.query, parts.fragment) == ("", "", "", ""), href
        assert not href.startswith(("/", "\\")) and ":" not in href, href
        target = page_path.parent / urllib.parse.unquote(href)  # where a browser goes
        assert target.is_file() and target.name == PAGE_FILE, href
    folders = {(page_path.parent / urllib.parse.unquote(href)).parent.name for href in links}
    assert folders == {"0", *HOSTILE_RUNS}  # each name leads to its own folder, whatever it holds
    assert "javascript%3Adocument.title%3D%27pwned%27%3B1/report.html" in links
    assert "%3Cimg%20src%3Dx%20onerror%3Ddocument.title%3D%27pwned%27%3E/report.html" in links
    for page_text in [page, *((hostile_sweep / name / PAGE_FILE).read_text() for name in HOSTILE_RUNS)]:
        sources = Page(page_text).attributes("img", "src")
        assert sources and all(source.startswith("data:image/png;base64,") for source in sources)


def test_no_tag_or_attribute_comes_from_the_data_and_every_value_shows_as_text(hostile_sweep):
    _, page = sweep_page_of(hostile_sweep)
    pages = {"sweep": page, **{name: (hostile_sweep / name / PAGE_FILE).read_text() for name in HOSTILE_RUNS}}
    for which, text in pages.items():
        parsed = Page(text)
        assert {tag for tag, _ in parsed.tags} <= PAGE_TAGS, which
        handlers = [name for _, attrs in parsed.tags for name in attrs if name.startswith("on")]
        assert handlers == [], which
        assert all(tag != "img" or attrs["src"].startswith("data:") for tag, attrs in parsed.tags), which
        shown = "".join(parsed.text)
        assert SCRIPT_TAG in shown, which  # the override (and the config value on a run's page), as text
    sweep_text = "".join(Page(page).text)
    for name in HOSTILE_RUNS:  # each run's name, as text, in the table
        assert name in sweep_text
    assert BAD_METRIC in sweep_text  # a metric name is a column header, as text
    assert "$\\frac{$1" in sweep_text  # a `$` in an override is text, and the overlay was still drawn
    run_page = "".join(Page(pages[IMG]).text)
    assert f"</pre>{SCRIPT_TAG}" in run_page and IMG in run_page  # its config value and its folder's name


def test_every_page_allows_only_its_own_script_by_hash_and_embedded_images(hostile_sweep):
    _, page = sweep_page_of(hostile_sweep)
    run_pages = [(hostile_sweep / name / PAGE_FILE).read_text() for name in ["0", *HOSTILE_RUNS]]
    for text in [page, *run_pages]:
        parsed = Page(text)
        assert parsed.tags[:2] == [("html", {"lang": "en"}), ("head", {})]
        assert parsed.tags[3][1].get("http-equiv") == "Content-Security-Policy"  # first after the charset
        policy = parsed.policy()
        assert policy["default-src"] == ["'none'"] and policy["img-src"] == ["data:"]
        assert policy["base-uri"] == ["'none'"] and policy["form-action"] == ["'none'"]
        [style] = parsed.styles
        assert policy["style-src"] == [source_of(style)]
        assert policy["script-src"] == ([source_of(script) for script in parsed.scripts] or ["'none'"])
        assert not {"'unsafe-inline'", "'unsafe-eval'", "'unsafe-hashes'", "*"} & {
            value for values in policy.values() for value in values
        }
    sweep = Page(page)
    assert sweep.scripts == [SORT_SCRIPT] and sweep.policy()["script-src"] == [SORT_SCRIPT_SOURCE]
    assert all(Page(text).scripts == [] for text in run_pages)  # a run's page runs nothing: script-src 'none'
    assert all(Page(text).policy()["script-src"] == ["'none'"] for text in run_pages)


# ---- in a real browser, clicked --------------------------------------------------------------------------

CHROMIUM = next((shutil.which(name) for name in ("chromium", "chromium-browser") if shutil.which(name)), None)
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no chromium on this machine: the pages were checked as parsed, not clicked in a browser "
    "(`apt-get install chromium` as root, as .ci/run does, to run these)",
)


# Starts chromium with the pipe's ends on the fds --remote-debugging-pipe reads and writes (3 and 4).
ONTO_FDS_3_AND_4 = "import os, sys; os.dup2(int(sys.argv[1]), 3); os.dup2(int(sys.argv[2]), 4); " \
                   "os.execv(sys.argv[3], sys.argv[3:])"  # fmt: skip


class Browser:
    """Headless Chromium over the DevTools protocol on a pipe (fd 3 in, fd 4 out, messages ending in NUL):
    the standard library only, no websocket. One tab; a dialog (alert) is recorded and dismissed."""

    def __init__(self, home: Path) -> None:
        commands_read, self._commands = os.pipe()
        self._replies, replies_write = os.pipe()
        self._log = home / "chromium.log"
        # Above fd 4, so that moving one onto fd 3 or 4 cannot overwrite the other.
        commands_read, replies_write = (_above(fd, 10) for fd in (commands_read, replies_write))
        # --no-sandbox: CI containers run as root, where chromium's sandbox refuses to start.
        chromium = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe",
                    f"--user-data-dir={home / 'chromium-profile'}", "--window-size=1200,900",
                    "about:blank"]  # fmt: skip
        self.process = subprocess.Popen(
            [sys.executable, "-c", ONTO_FDS_3_AND_4, str(commands_read), str(replies_write), *chromium],
            pass_fds=(commands_read, replies_write),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._log.open("w"),
            env={**os.environ, "HOME": str(home)},
        )  # fmt: skip
        os.close(commands_read)
        os.close(replies_write)
        self._buffer, self._last_id = b"", 0
        self.events: list[dict[str, Any]] = []
        self.dialogs: list[str] = []
        self.console: list[str] = []
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self._session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable", session=True)

    def call(self, method: str, session: bool = False, **params: Any) -> dict[str, Any]:
        self._last_id += 1
        sent = self._last_id
        self._send({"id": sent, "method": method, "params": params}, session)
        while True:
            message = self._next(timeout=60)
            if message.get("id") == sent:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def wait_for(self, method: str, seconds: float) -> bool:
        """Whether the event `method` arrives (or has arrived since the last wait) within `seconds`."""
        deadline = time.monotonic() + seconds
        while not any(event.get("method") == method for event in self.events):
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            try:
                self._next(timeout=left)
            except TimeoutError:
                return False
        return True

    def open(self, url: str) -> None:
        self.events.clear()
        self.call("Page.navigate", session=True, url=url)
        assert self.wait_for("Page.loadEventFired", 60), f"{url} did not load"

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression, evaluated by DevTools (not by the page, under its policy)."""
        result = self.call("Runtime.evaluate", session=True, expression=expression, returnByValue=True)
        return result["result"].get("value")

    def click(self, element: str) -> None:
        """A real left click, pressed and released at the middle of the element (a JavaScript expression),
        as a user's mouse does."""
        box = self.evaluate(f"(function () {{ var e = {element};"
                            f" e.scrollIntoView({{block: 'center'}}); var r = e.getBoundingClientRect();"
                            f" return [r.left + r.width / 2, r.top + r.height / 2]; }})()")  # fmt: skip
        assert box, f"nothing to click: {element}"
        self.events.clear()
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", session=True, type=kind, x=box[0], y=box[1],
                      button="left", clickCount=1)  # fmt: skip

    def close(self) -> None:
        try:
            self._send({"id": 0, "method": "Browser.close", "params": {}}, False)
            self.process.wait(timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            self.process.kill()
            self.process.wait()
        finally:
            os.close(self._commands)
            os.close(self._replies)

    def _send(self, message: dict[str, Any], session: bool) -> None:
        if session:
            message["sessionId"] = self._session
        os.write(self._commands, json.dumps(message).encode() + b"\0")

    def _next(self, timeout: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            ready, _, _ = select.select([self._replies], [], [], timeout)
            if not ready:
                raise TimeoutError
            chunk = os.read(self._replies, 1 << 16)
            if not chunk:
                said = self._log.read_text(errors="replace")[-3000:]
                raise EOFError(f"chromium closed its DevTools pipe; it said:\n{said}")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\0", 1)
        message = json.loads(line)
        method = message.get("method")
        if method:
            self.events.append(message)
        if method == "Page.javascriptDialogOpening":  # alert() ran: record it, and let the page go on
            self.dialogs.append(message["params"]["message"])
            self._send({"id": 10**9 + len(self.dialogs), "method": "Page.handleJavaScriptDialog",
                        "params": {"accept": True}}, True)  # fmt: skip
        if method == "Log.entryAdded":
            self.console.append(message["params"]["entry"]["text"])
        return message


def _above(fd: int, lowest: int) -> int:
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, lowest)
    os.close(fd)
    return moved


@pytest.fixture
def browser(tmp_path: Path):
    opened = Browser(tmp_path)
    yield opened
    opened.close()


def link_named(name: str) -> str:
    """The run's link in the table, found by the name it shows (not by its href: that is what is tested)."""
    return f"Array.from(document.querySelectorAll('#runs a')).find(a => a.textContent === {json.dumps(name)})"


@needs_chromium
def test_clicking_each_hostile_runs_link_opens_its_page_and_runs_nothing(hostile_sweep, browser):
    page, _ = sweep_page_of(hostile_sweep)
    title = f"nnexp runs: {hostile_sweep}"
    browser.open(page.as_uri())
    assert browser.evaluate("document.title") == title
    # The page's own script ran under its policy (it made each header sortable), and nothing was refused.
    assert browser.evaluate("document.querySelector('#runs th').title") == "click to sort"
    assert browser.console == []
    assert browser.evaluate("document.querySelectorAll('img').length") == 2  # chart, overlay; none injected
    for name in HOSTILE_RUNS:
        browser.open(page.as_uri())
        browser.click(link_named(name))
        opened = browser.wait_for("Page.loadEventFired", 15)
        assert browser.evaluate("document.title") != PWNED and browser.dialogs == [], f"{name!r} ran"
        assert opened, f"clicking {name!r} opened nothing"
        assert browser.evaluate("location.href") == (hostile_sweep / name / PAGE_FILE).as_uri()
        own = f"{what_ran(hostile_sweep / name).headline} (completed) · nnexp"  # its page, unchanged
        assert browser.evaluate("document.title") == own
        assert browser.evaluate("document.querySelectorAll('img:not([src^=\"data:\"])').length") == 0
    assert browser.dialogs == []


@needs_chromium
def test_the_check_sees_a_script_run_when_a_link_is_unsafe(tmp_path, browser):
    """The control: without nnexp's encoding and policy, the same click runs the link's script."""
    unsafe = tmp_path / "unsafe.html"
    unsafe.write_text(f'<!DOCTYPE html><title>safe</title><a id="x" href="{html.escape(JS_TITLE)}">run</a>')
    browser.open(unsafe.as_uri())
    browser.click("document.getElementById('x')")
    deadline = time.monotonic() + 10
    while browser.evaluate("document.title") != PWNED and time.monotonic() < deadline:
        time.sleep(0.1)
    assert browser.evaluate("document.title") == PWNED


@needs_chromium
def test_the_policy_alone_stops_a_handler_or_javascript_link_slipped_into_a_page(hostile_sweep, browser):
    """Should escaping ever miss something, the Content-Security-Policy still runs none of it."""
    page, text = sweep_page_of(hostile_sweep)
    handler = f"document.title='{PWNED}'"
    slipped = (f"<body><a id='slipped' href=\"{html.escape(JS_ALERT)}\">x</a>"
               f'<img src=x onerror="{handler}"><svg onload="{handler}"></svg>')  # fmt: skip
    tampered = page.with_name("tampered.html")
    tampered.write_text(text.replace("<body>", slipped, 1))
    browser.open(tampered.as_uri())
    browser.click("document.getElementById('slipped')")
    time.sleep(1)
    assert browser.evaluate("document.title") == f"nnexp runs: {hostile_sweep}" and browser.dialogs == []
    assert browser.evaluate("document.querySelector('#runs th').title") == "click to sort"  # its own ran
    refused = [line for line in browser.console if "Content Security Policy" in line]
    assert len(refused) >= 2, browser.console  # the browser says it refused them
