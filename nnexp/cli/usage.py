"""What `nnexp --help` prints: the usage, every config group with its options, and the defaults.

Read from the config folder as it is on disk, without importing Hydra: Hydra's own `--help` deep-copies
its whole config repository for every group it lists (126 copies, 2.7 s here), where a directory listing
takes milliseconds. `nnexp --cfg job` prints the composed config; `--hydra-help` is still Hydra's.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path
from typing import Any

from nnexp.errors import command_line

HELP_FLAGS = ("-h", "--help")

USAGE = """\
usage: nnexp [GROUP=OPTION ...] [KEY=VALUE ...]   train one run (into outputs/DATE/TIME/)
       nnexp -m GROUP=A,B KEY=X,Y ...             a sweep: one run per combination
       nnexp --cfg job [GROUP=OPTION ...]         print the composed config; run nothing
       nnexp resume=RUN_FOLDER                    continue a stopped run
       nnexp +lr_find=exponential [...]           a learning-rate range test instead of training
       nnexp --hydra-help                         Hydra's own flags, launchers and sweepers"""

FOOTER = """\
Any key can be set as well: optim.lr=0.01 trainer.epochs=5 (`nnexp --cfg job` lists them all).
Several options at once: regularization=[l2,dropout]."""


def asks_for_help(argv: list[str]) -> bool:
    return any(arg in HELP_FLAGS for arg in argv)


def config_groups(config_dir: Path) -> dict[str, list[str]]:
    """Each config group under config_dir (nested ones as `a/b`) and its options, as Hydra lists them:
    every folder holding .yaml files, Hydra's own `hydra/` groups left out."""
    groups = {}
    for folder, subfolders, files in os.walk(config_dir, followlinks=True):  # configs/experiment is a link
        group = Path(folder).relative_to(config_dir).as_posix()
        subfolders[:] = [
            name for name in subfolders if Path(group, name).as_posix() not in ("hydra", "__pycache__")
        ]
        options = sorted(name.removesuffix(".yaml") for name in files if name.endswith(".yaml"))
        if group != "." and options:
            groups[group] = options
    for group in [group for group in groups if "/" in group]:  # experiment/lectures: experiment=lectures/NAME
        parent, _, sub = group.rpartition("/")
        if parent in groups and parent != "hydra":
            groups[parent] += [f"{sub}/{option}" for option in groups.pop(group)]
    return dict(sorted(groups.items()))


def default_choices(config_dir: Path) -> dict[str, list[str]]:
    """The option(s) each group takes when the command line names none: config.yaml's defaults list."""
    import yaml  # PyYAML comes with OmegaConf; milliseconds, unlike Hydra's composition

    primary = yaml.safe_load((config_dir / "config.yaml").read_text(encoding="utf-8")) or {}
    choices = {}
    for entry in primary.get("defaults", []):
        if not isinstance(entry, dict):  # _self_
            continue
        [(key, value)] = entry.items()
        if key.startswith("override "):  # Hydra's own groups
            continue
        group = key.removeprefix("optional ").split("@")[0]
        options = value if isinstance(value, list) else [value]
        choices[group] = [str(option) for option in options if option is not None]
    return choices


def preset_descriptions(config_dir: Path) -> dict[str, str]:
    """{preset: its first sentence}, for every experiment preset: read from the comment at the top of its YAML
    (after `# @package` and the `# nnexp experiment=...` line; a lecture's `Seed NNN (...):` citation and a
    `(first: ...)` setup line are skipped: the description follows them). No YAML is parsed: milliseconds."""
    return {name: _description(config_dir / "experiment" / f"{name}.yaml")
            for name in config_groups(config_dir).get("experiment", [])}  # fmt: skip


def _description(path: Path) -> str:
    header = []
    try:
        with open(path, encoding="utf-8") as file:
            for line in file:
                if not line.startswith("#"):
                    break
                header.append(line.lstrip("#").strip())
    except (OSError, UnicodeDecodeError):
        return ""
    kept = [line for line in header if not line.startswith(("@package", "nnexp ", "(first:", "(offline"))]
    text = " ".join(" ".join(kept).split())
    if text.startswith("Seed ") and "): " in text:  # "Seed 004 (the notebook, its cell): what it shows"
        text = text.split("): ", 1)[1]
    return text.split(". ", 1)[0].rstrip(".")


def help_text(config_dir: Path, width: int = 100) -> str:
    groups = config_groups(config_dir)
    defaults = default_choices(config_dir)
    name_width = max(map(len, groups), default=0) + 2
    lines = [
        USAGE,
        "",
        "Config groups (GROUP=OPTION; * marks the default):",
    ]
    for group, options in groups.items():
        chosen = defaults.get(group, [])
        marked = [f"{option}*" if option in chosen else option for option in options]
        lines.append(
            textwrap.fill(
                ", ".join(marked),
                width=width,
                initial_indent=f"  {group + ':':<{name_width}}",
                subsequent_indent=" " * (name_width + 2),
                break_on_hyphens=False,
            )
        )
    presets = preset_descriptions(config_dir)
    if presets:
        lines += ["", "Presets (experiment=NAME; each file's header says what it reaches and how to run it):"]
        name_width = max(map(len, presets)) + 2
        for name, description in presets.items():
            line = f"  {name:<{name_width}}{description}"
            lines.append(line if len(line) <= width else line[: width - 1].rsplit(" ", 1)[0] + " …")
    return "\n".join([*lines, "", FOOTER])


def one_command_at_a_time(args: Any) -> str | None:
    """Hydra runs one of --run, -m, --cfg, --info and --shell-completion, and meets two with a ValueError
    traceback: the one line that says so instead (None when the command line asks for one)."""
    given = [
        flag
        for flag, asked in (
            ("--run", args.run),
            ("-m", args.multirun),
            ("--cfg", args.cfg),
            ("--info", args.info is not None),
            ("--shell-completion", args.shell_completion),
        )
        if asked
    ]
    if len(given) < 2:
        return None
    if "-m" in given and ("--cfg" in given or "--info" in given):
        printing = "--cfg" if "--cfg" in given else "--info"
        shown = [printing, args.cfg or args.info or ""]
        job = command_line("nnexp", *[arg for arg in shown if arg], *_first_values(args.overrides))
        return (
            f"{printing} prints one config and -m runs a sweep: give one of them; to see a sweep job's "
            f"config, give that job's values without -m ({job})"
        )
    return f"{' and '.join(given)} cannot be combined: Hydra takes one of --run, -m, --cfg, --info at a time"


def _first_values(overrides: list[str]) -> list[str]:
    """Each override with its first value (`seed=0,1` -> `seed=0`): one job of the sweep they describe."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except HydraException:
        return overrides
    lines = []
    for override in parsed:
        if override.is_sweep_override() and override.is_discrete_sweep():
            values = list(override.sweep_string_iterator())
            lines.append(f"{override.get_key_element()}={values[0]}" if values else override.input_line)
        else:
            lines.append(override.input_line)
    return lines
