"""What ran, read back from a run folder, so every picture and page can say it instead of a clock time.

A slide copied out of a run folder must still say which experiment it shows: the preset (or the model, data
and optimiser), the overrides typed on the command line (Hydra's .hydra/overrides.yaml: exactly what differs
from the defaults), the seed, the learning rate and the batch size (.hydra/config.yaml). In a sweep the
swept values lead, found as the job's overrides that its sweep's multirun.yaml does not hold as typed.

The folder is untrusted data: what is read here is text to show (escaped on pages, drawn without TeX in
figures), never run; a file that is missing or cannot be read leaves its part out, never fails a picture.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

MAX_FILE_BYTES = 1_000_000  # a config.yaml or multirun.yaml larger than this is not read
MAX_HEADLINE = 110  # characters: past this the overrides are cut with "…"


@dataclass(frozen=True)
class WhatRan:
    name: str  # "digits_mlp", or "MLP on digits with Adam" when no preset was named
    swept: list[str] = field(default_factory=list)  # in a sweep: this job's own values, "optim=sgd"
    fixed: list[str] = field(default_factory=list)  # the other overrides, as typed
    typed: list[str] = field(default_factory=list)  # every override but Hydra's own, in the order typed
    seed: Any = None
    lr: Any = None
    batch_size: Any = None

    @property
    def command(self) -> str:
        """The command that runs this again: `nnexp experiment=digits_mlp trainer.epochs=2`."""
        return " ".join(["nnexp", *(shlex.quote(override) for override in self.typed)])

    @property
    def headline(self) -> str:
        """One line for a figure's or page's title: "digits_mlp: trainer.epochs=2 · seed 0"."""
        overrides = " ".join([*self.swept, *self.fixed])
        text = f"{self.name}: {overrides}" if overrides else f"{self.name} (defaults)"
        if len(text) > MAX_HEADLINE:
            text = text[: MAX_HEADLINE - 1] + "…"
        seeded = any(override.lstrip("+~").startswith("seed=") for override in self.typed)
        return text if seeded or self.seed is None else f"{text} · seed {self.seed}"

    @property
    def settings(self) -> str:
        """ "lr 0.001 · batch size 32 · seed 0": the numbers a lecturer is asked first."""
        facts = [("lr", self.lr), ("batch size", self.batch_size), ("seed", self.seed)]
        return " · ".join(f"{name} {value}" for name, value in facts if value is not None)


def what_ran(run_dir: Path) -> WhatRan:
    """What ran in `run_dir`, from what the folder holds; parts that cannot be read are left out."""
    run_dir = Path(run_dir)
    typed = [_one_line(o) for o in _read_list(run_dir / ".hydra" / "overrides.yaml")]
    typed = [override for override in typed if not override.lstrip("+~").startswith("hydra.")]
    config = _read_yaml(run_dir / ".hydra" / "config.yaml")
    config = config if isinstance(config, dict) else {}
    preset = next((o.split("=", 1)[1] for o in typed if o.lstrip("+~").startswith("experiment=")), None)
    rest = [override for override in typed if not override.lstrip("+~").startswith("experiment=")]
    in_sweep = set(_sweep_overrides(run_dir.parent))
    swept = [override for override in rest if in_sweep and override not in in_sweep]
    return WhatRan(
        name=_one_line(preset) if preset else _chosen(config),
        swept=swept,
        fixed=[override for override in rest if override not in swept],
        typed=typed,
        seed=_scalar(config.get("seed")),
        lr=_scalar(_section(config, "optim").get("lr")),
        batch_size=_scalar(_section(config, "trainer").get("batch_size")),
    )


def headline_of(run_dir: Path) -> str:
    """The headline of what ran in `run_dir`; the folder's name when it cannot be read."""
    try:
        return what_ran(Path(run_dir)).headline
    except Exception:  # a title is a label: a folder too odd to read is named by its name
        return Path(run_dir).name


def read_summary(run_dir: Path) -> dict[str, Any]:
    """summary.json as a dict; {} when it is missing or cannot be read (a picture is drawn without it)."""
    try:
        summary = json.loads((Path(run_dir) / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return summary if isinstance(summary, dict) else {}


def _chosen(config: dict[str, Any]) -> str:
    """ "MLP on digits with Adam", from the `_target_`s the config built (what the folder says it ran)."""
    model = _target(config, "model").rsplit(".", 1)[-1]
    data = _target(config, "data").rsplit(".", 1)[-1].removeprefix("load_")
    optim = _target(config, "optim").rsplit(".", 1)[-1]
    if not (model and data):
        return "nnexp run"
    return f"{model} on {data}" + (f" with {optim}" if optim else "")


def _sweep_overrides(sweep_dir: Path) -> list[str]:
    """The overrides typed for the sweep (`optim.lr=0.1,0.01`), when `sweep_dir` holds its multirun.yaml."""
    recorded = _read_yaml(sweep_dir / "multirun.yaml")
    try:
        task = recorded["hydra"]["overrides"]["task"]
    except (TypeError, KeyError):
        return []
    return [_one_line(override) for override in task] if isinstance(task, list) else []


def _target(config: dict[str, Any], key: str) -> str:
    return _one_line(_section(config, key).get("_target_") or "")


def _section(config: dict[str, Any], key: str) -> dict[str, Any]:
    section = config.get(key)
    return section if isinstance(section, dict) else {}


def _scalar(value: Any) -> Any:
    """A number or short text to show; anything else (a list, a mapping, a long text) is left out."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return value
    return _one_line(value)[:40] if isinstance(value, str) else None


def _one_line(value: Any) -> str:
    """Text from the folder as one line: a newline in an override must not start a line of its own."""
    return " ".join(str(value).split())


def _read_list(path: Path) -> list[Any]:
    found = _read_yaml(path)
    return found if isinstance(found, list) else []


def _read_yaml(path: Path) -> Any:
    try:
        if not path.is_file() or path.stat().st_size > MAX_FILE_BYTES:
            return None
        return yaml.load(path.read_text(encoding="utf-8"), Loader=_LOADER)
    except (OSError, ValueError, RecursionError, yaml.YAMLError):  # UnicodeDecodeError is a ValueError
        return None


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: a tenth of the time

__all__ = ["WhatRan", "headline_of", "read_summary", "what_ran"]
