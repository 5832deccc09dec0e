"""HTML pages that show runs: `report.html` in every run folder, and the sweep page of `nnexp-report --html`.

Each page is one self-contained file: images embedded as base64 data URIs, the style inline, no script from
the network and no server, so it opens in any browser, attached to an e-mail or copied off a cluster.

Run folders are shared, so everything a page shows is untrusted data (folder names, overrides, config values,
metric names, CSV cells): every piece of text is escaped, every link is a percent-encoded relative path
(`relative_link`), and every page carries a Content-Security-Policy that lets it run only its own script
(by its SHA-256) and show only embedded images: no event handler, `javascript:` URL, foreign script,
stylesheet, font, frame or fetch, should anything slip past the escaping.
"""

from __future__ import annotations

import base64
import csv
import functools
import hashlib
import html
import json
import logging
import math
import os
import urllib.parse
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from nnexp.atomic import write_atomically
from nnexp.errors import environment_fault
from nnexp.look.train_numbers import evaluated_best
from nnexp.look.what_ran import what_ran
from nnexp.runs.folder import PAGE_FILE

log = logging.getLogger("nnexp")

# The views a run may hold, in the order a reader wants them; any other PNG in the folder follows.
VIEW_IMAGES = (
    "learning_curves.png",
    "lr_find.png",
    "confusion_matrix.png",
    "predictions.png",
    "top_losses.png",
    "fit.png",
    "weights.png",
    "activations.png",  # look/activations.py
    "decision_boundary.png",  # look/boundary.py: two-feature classification
)
ANIMATIONS = ("training.gif",)  # after the boundary: it as it trained (or a 1-D fit), runs/snapshots.py
TABLE_ROWS = 20  # rows of predictions.csv shown, first and worst each
MAX_TABLE_CELLS = 2500  # a confusion matrix of many classes is left to its CSV
MAX_IMAGE_BYTES = 8_000_000  # a PNG larger than this is linked, not embedded

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1.5em auto; max-width: 1200px;
       padding: 0 1em; color: #222; background: #fff; }
h1 { font-size: 1.4em; margin-bottom: 0.2em; } h2 { font-size: 1.15em; border-bottom: 1px solid #ddd;
     padding-bottom: 0.2em; margin-top: 1.6em; }
.status { display: inline-block; padding: 0.1em 0.6em; border-radius: 0.8em; color: #fff; font-size: 0.9em; }
.status-completed { background: #2a7d2e; } .status-failed, .status-damaged { background: #b3261e; }
.status-diverged { background: #c25e00; } .status-interrupted, .status-running { background: #6b6b6b; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #f3f3f3; } th.sortable { cursor: pointer; } th.sortable:hover { background: #e4e4e4; }
tr.not-completed td { color: #b3261e; }
tr.finding-problem td:first-child { border-left: 5px solid #c25e00; font-weight: 600; }
tr.finding-expected td { color: #3d5c3f; background: #eef6ee; }
tr.finding-expected td:first-child { border-left: 5px solid #2a7d2e; }
pre { background: #f7f7f7; border: 1px solid #e2e2e2; padding: 0.6em; overflow-x: auto; font-size: 0.85em; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
.views { display: flex; flex-wrap: wrap; gap: 0 1.5em; align-items: flex-start; }
figcaption { font-size: 0.85em; color: #555; } .muted { color: #666; font-size: 0.9em; }
"""


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def fmt(value: Any, std: Any = None) -> str:
    """A number as a reader wants it (4 significant digits), '-' for a missing one; text as it is."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    text = f"{value:.4g}" if isinstance(value, float) else f"{value:,}"
    if isinstance(std, (int, float)) and not math.isnan(std):
        text += f" ± {std:.2g}"
    return text


GENERATOR = '<meta name="generator" content="nnexp">'


@functools.cache
def source_hash(text: str) -> str:
    """The CSP source that allows exactly this inline <script> or <style> text: 'sha256-<base64>'."""
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return f"'sha256-{base64.b64encode(digest).decode('ascii')}'"


def content_security_policy(script: str = "", style: str = STYLE) -> str:
    """What a page may load and run: its own inline style and script (by hash), images embedded as data:
    URIs, nothing else; no inline event handler or `javascript:` URL runs, since neither has the hash."""
    scripts = source_hash(script) if script else "'none'"
    return "; ".join([
        "default-src 'none'",
        "img-src data:",  # the PNGs, base64 inside the page; no <img> may fetch anything
        f"style-src {source_hash(style)}",  # the one <style> element; no style="" attribute is used
        f"script-src {scripts}",
        "base-uri 'none'",  # no <base> may re-root the relative links
        "form-action 'none'",
    ])  # fmt: skip


def csp_meta(script: str = "", style: str = STYLE) -> str:
    policy = esc(content_security_policy(script, style))
    return f'<meta http-equiv="Content-Security-Policy" content="{policy}">'


def written_by_nnexp(page: Path) -> bool:
    """Whether `page` opens as every run page nnexp writes: with its policy that lets no script run. A
    report.html in a shared folder may be anyone's; nnexp links only to pages that cannot run code."""
    head = "\n".join(["<!DOCTYPE html>", _HTML_HEAD, csp_meta()]).encode("utf-8")
    try:
        with open(page, "rb") as file:
            return file.read(len(head)) == head
    except OSError:
        return False


def relative_link(target: Path, page_path: Path) -> str:
    """The href from the page at `page_path` to the file `target`: a relative path, percent-encoded.

    A folder may be named anything (`javascript:alert(1)`, `<img src=x onerror=...>`, `?#%`): quote() encodes
    every character but letters, digits, `_.-~` and `/`, so no colon is left to make a scheme
    (`javascript%3Aalert%281%29/report.html`), nor a `?` or `#` to cut the path short.
    """
    relative = os.path.relpath(Path(target).resolve(), Path(page_path).resolve().parent)
    encoded = urllib.parse.quote(os.fsencode(Path(relative).as_posix()), safe="/")  # bytes: any file name
    # relpath never starts with "/"; were it to, "//host" would name a server: keep it a path.
    return f"./{encoded}" if encoded.startswith("/") else encoded


_HTML_HEAD = '<html lang="en"><head><meta charset="utf-8">'


def document(title: str, body: Iterable[str], script: str = "", style: str = STYLE) -> str:
    """A self-contained page: `style` and `script` inline, each allowed by its hash and nothing else."""
    parts = [
        "<!DOCTYPE html>",
        _HTML_HEAD,
        csp_meta(script, style),  # first in <head>: it governs everything after it
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        GENERATOR,  # how nnexp-report knows a page it may write over
        f"<title>{esc(title)}</title><style>{style}</style></head><body>",
        *body,
        f"<script>{script}</script>" if script else "",
        "</body></html>",
    ]
    return "\n".join(parts)


def table(headers: list[str], rows: Iterable[list[Any]], css_class: str = "", row_classes: Any = None) -> str:
    """An HTML table; numbers right-aligned, every cell escaped."""
    head = "".join(f"<th>{esc(header)}</th>" for header in headers)
    lines = [f'<table class="{esc(css_class)}"><thead><tr>{head}</tr></thead><tbody>']
    for index, row in enumerate(rows):
        extra = f' class="{esc(row_classes[index])}"' if row_classes and row_classes[index] else ""
        cells = "".join(_cell(value) for value in row)
        lines.append(f"<tr{extra}>{cells}</tr>")
    lines.append("</tbody></table>")
    return "".join(lines)


def _cell(value: Any) -> str:
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    return f'<td class="num">{esc(fmt(value))}</td>' if numeric else f"<td>{esc(fmt(value))}</td>"


def image(path: Path, caption: str | None = None) -> str:
    """An <img> with the PNG inside the page; a PNG too large to embed is named instead."""
    data = path.read_bytes()
    caption_html = f"<figcaption>{esc(caption or path.name)}</figcaption>"
    if len(data) > MAX_IMAGE_BYTES:
        too_large = f"{len(data):,} bytes, too large to embed; open it beside this page"
        return f"<p class='muted'>{esc(path.name)}: {too_large}</p>"
    encoded = base64.b64encode(data).decode("ascii")
    return (
        f'<figure><img alt="{esc(path.name)}" src="data:{_image_type(path)};base64,{encoded}">'
        f"{caption_html}</figure>"
    )


def _image_type(path: Path) -> str:
    return "image/gif" if path.suffix.lower() == ".gif" else "image/png"  # training.gif; the rest are PNGs


def image_bytes(data: bytes, alt: str, caption: str) -> str:
    encoded = base64.b64encode(data).decode("ascii")
    source = f"data:image/png;base64,{encoded}"
    return f'<figure><img alt="{esc(alt)}" src="{source}"><figcaption>{esc(caption)}</figcaption></figure>'


# ---- the page of one run ------------------------------------------------------------------------------


def write_run_page(run_dir: Path) -> Path | None:
    """Called at the end of every run, however it ended: a page that cannot be made is a warning, never a
    failed run; one the machine refuses to store (a full disk) is an EnvironmentFault for the caller."""
    path = Path(run_dir) / PAGE_FILE
    try:
        write_atomically(path, run_page(Path(run_dir)))  # a reader never sees half a page
        return path
    except Exception as error:  # the run's records are already written; the page is a view of them
        fault = environment_fault(error, path)
        if fault is not None:
            raise fault from None
        log.warning("could not write %s: %s", PAGE_FILE, error)
        return None


def run_page(run_dir: Path) -> str:
    """The page of a run folder, from the files it holds; a missing or damaged file is said, not fatal."""
    summary, problem = _read_json(run_dir / "summary.json")
    status = str(summary.get("status", "unknown")) if isinstance(summary, dict) else "damaged"
    summary = summary if isinstance(summary, dict) else {}
    what = what_ran(run_dir)
    body = [
        f"<h1>{esc(what.headline)} <span class='status status-{esc(status)}'>{esc(status)}</span></h1>",
        # What a lecturer is asked first, before any picture: how to run it again, and its numbers.
        f"<p>command: <code>{esc(what.command)}</code></p>",
        f"<p>{esc(what.settings)}</p>" if what.settings else "",
        f"<p class='muted'>{esc(run_dir.resolve())}</p>",
    ]
    if problem:
        body.append(f"<p class='muted'>{esc(problem)}</p>")
    # What the model learned first; the config, long, last and folded.
    body += _overview(summary)
    body += _results(summary)
    body += _diagnostics(summary)
    body += _images(run_dir)
    body += _csv_views(run_dir)
    body += _samples(run_dir)
    body += _config(run_dir)
    return document(f"{what.headline} ({status}) · nnexp", body)


def _read_json(path: Path) -> tuple[Any, str | None]:
    if not path.is_file():
        return {}, f"{path.name}: not written (the run stopped before it began)"
    try:
        return json.loads(path.read_text(encoding="utf-8")), None
    except (OSError, ValueError) as error:
        return {}, f"{path.name}: cannot be read ({error})"


def _overview(summary: dict[str, Any]) -> list[str]:
    data = summary.get("data") if isinstance(summary.get("data"), dict) else {}
    facts = [
        ("data", data.get("name")),
        ("task", data.get("task")),
        ("model", summary.get("model")),
        ("parameters", summary.get("num_parameters")),
        ("loss", summary.get("loss")),
        ("optimizer", summary.get("optimizer")),
        ("device", summary.get("device")),
        ("seed", summary.get("seed")),
        ("epochs completed", summary.get("epochs_completed")),
        ("wall time (s)", summary.get("wall_time_s")),
        ("started", summary.get("started_at")),
        ("error", summary.get("error")),
        ("resume with", summary.get("resume_with")),
    ]
    rows = [[name, value] for name, value in facts if value not in (None, "")]
    if not rows:
        return []
    cells = "".join(f"<tr><th>{esc(name)}</th>{_cell(value)}</tr>" for name, value in rows)
    return ["<h2>Run</h2>", f"<table>{cells}</table>"]


def _config(run_dir: Path) -> list[str]:
    out = ["<h2>Config</h2>"]
    overrides = run_dir / ".hydra" / "overrides.yaml"
    config = run_dir / ".hydra" / "config.yaml"
    try:
        import yaml

        lines = yaml.safe_load(overrides.read_text(encoding="utf-8")) if overrides.is_file() else []
        shown = " ".join(str(line) for line in lines or []) or "(none: the defaults)"
        out.append(f"<p>overrides: <code>{esc(shown)}</code></p>")
    except Exception as error:  # a damaged file is named, the rest of the page still shows
        out.append(f"<p class='muted'>{esc(overrides.name)}: cannot be read ({esc(error)})</p>")
    if config.is_file():
        shown = f"<pre>{esc(_text(config))}</pre>"
        out.append(f"<details><summary>.hydra/config.yaml (click to show)</summary>{shown}</details>")
    return out


def _text(path: Path, limit: int = 200_000) -> str:
    return path.read_bytes()[:limit].decode("utf-8", errors="replace")


def _results(summary: dict[str, Any]) -> list[str]:
    metrics = summary.get("metrics") if isinstance(summary.get("metrics"), dict) else {}
    final = metrics.get("final") if isinstance(metrics.get("final"), dict) else {}
    best = metrics.get("best") if isinstance(metrics.get("best"), dict) else {}
    baselines = [b for b in summary.get("baselines") or [] if isinstance(b, dict)]
    if not final and not baselines:
        return []
    # One row per model (the run, then each baseline), one column per split_metric.
    order = {"train": 0, "val": 1, "test": 2}
    named = {*final, *(key for b in baselines for key in b if "_" in key and key != "name")}
    columns = sorted(named, key=lambda column: (order.get(column.split("_", 1)[0], 3), column))
    rows = [["this run", *(final.get(column) for column in columns)]]
    rows += [[b.get("name", "baseline"), *(b.get(column) for column in columns)] for b in baselines]
    out = ["<h2>Results beside the baselines</h2>", table(["model", *columns], rows)]
    best, evaluated = evaluated_best(best)  # never a running mean over an epoch's batches
    if best:
        out.append(f"<p class='muted'>best value of each metric over the epochs ({esc(evaluated)}):</p>")
        out.append(table(list(best), [list(best.values())]))
    return out


def _diagnostics(summary: dict[str, Any]) -> list[str]:
    findings = [f for f in summary.get("diagnostics") or [] if isinstance(f, dict)]
    if not findings:
        return ["<h2>Diagnostics</h2>", "<p>none: no classic mistake was seen</p>"] if summary else []
    # what a lecture preset demonstrates on purpose (its diagnostics.expect) is set apart from a problem
    said = [f.get("expected") is True for f in findings]
    rows = [[f"{fmt(f.get('code'))}{' (expected)' * e}", _when(f), f.get("message"), f.get("hint")]
            for f, e in zip(findings, said, strict=True)]  # fmt: skip
    kinds = ["finding-expected" if e else "finding-problem" for e in said]
    out = ["<h2>Diagnostics</h2>"]
    if any(said):
        out.append(EXPECTED_NOTE)
    return [*out, table(["code", "when", "what was seen", "what to try"], rows, "findings", kinds)]


EXPECTED_NOTE = (
    "<p class='muted'>rows marked <b>expected</b> (green) are what this experiment shows on purpose "
    "(its <code>diagnostics.expect</code>): the lesson, not a mistake to fix</p>"
)


def _when(finding: dict[str, Any]) -> str:
    """As the console says it: "before training" or "epoch 3", and the epoch it stopped holding."""
    epoch, resolved = finding.get("epoch"), finding.get("resolved_at")
    when = "before training" if epoch is None else f"epoch {fmt(epoch)}"
    return when if resolved is None else f"{when}; resolved at epoch {fmt(resolved)}"


def _images(run_dir: Path) -> list[str]:
    known = [run_dir / name for name in (*VIEW_IMAGES, *ANIMATIONS) if (run_dir / name).is_file()]
    others = sorted(path for path in run_dir.glob("*.png") if path.name not in VIEW_IMAGES)
    shown = []
    for path in [*known, *others]:
        try:
            shown.append(image(path))
        except OSError as error:
            shown.append(f"<p class='muted'>{esc(path.name)}: cannot be read ({esc(error)})</p>")
    return ["<h2>Views</h2>", "<div class='views'>", *shown, "</div>"] if shown else []


def _csv_views(run_dir: Path) -> list[str]:
    out: list[str] = []
    matrix = run_dir / "confusion_matrix.csv"
    if matrix.is_file():
        rows = _read_csv(matrix)
        if rows and len(rows) * len(rows[0]) <= MAX_TABLE_CELLS:
            out += ["<h2>Confusion matrix (confusion_matrix.csv)</h2>", table(rows[0], rows[1:])]
    predictions = run_dir / "predictions.csv"
    if predictions.is_file():
        rows = _read_csv(predictions)
        if rows:
            header, data = rows[0], rows[1:]
            out += [f"<h2>Predictions (predictions.csv, {len(data):,} rows)</h2>",
                    f"<p class='muted'>the first {min(TABLE_ROWS, len(data))}:</p>",
                    table(header, data[:TABLE_ROWS])]  # fmt: skip
            if "loss" in header:
                at = header.index("loss")
                worst = sorted(data, key=lambda row: -_number(row[at]) if at < len(row) else math.inf)
                out += [f"<p class='muted'>the {min(TABLE_ROWS, len(data))} with the highest loss:</p>",
                        table(header, worst[:TABLE_ROWS])]  # fmt: skip
    return out


def _read_csv(path: Path) -> list[list[Any]]:
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        log.warning("%s: cannot be read for %s (%s)", path, PAGE_FILE, error)
        return []
    return [rows[0], *([_maybe_number(cell) for cell in row] for row in rows[1:])] if rows else []


def _maybe_number(cell: str) -> Any:
    try:
        return int(cell)
    except ValueError:
        try:
            return float(cell)
        except ValueError:
            return cell


def _number(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return -math.inf
    return -math.inf if math.isnan(number) else number


def _samples(run_dir: Path) -> list[str]:
    samples = run_dir / "samples.txt"
    if not samples.is_file():
        return []
    text = _text(samples)
    return ["<h2>Generated text (samples.txt, the last part)</h2>", f"<pre>{esc(text[-6000:])}</pre>"]


__all__ = [
    "PAGE_FILE",
    "content_security_policy",
    "document",
    "esc",
    "fmt",
    "image",
    "image_bytes",
    "relative_link",
    "run_page",
    "source_hash",
    "table",
    "write_run_page",
    "written_by_nnexp",
]
