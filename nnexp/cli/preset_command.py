"""A preset that needs a value on the command line (a data file's path) says the exact command that runs it.

The command lives in the preset's header, where a reader of the YAML finds it (style: "the command that
uses it at the top of an experiment preset"), with the command that makes its data file first:

    # nnexp experiment=lectures/gp_relu data.path=curve.csv   (first: python -m nnexp.data.curve curve.csv)

A run that leaves such a key unset is then refused with both, ready to paste, instead of only the key.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from nnexp.errors import ConfigError
from nnexp.paths import CONFIG_DIR

_HEADER_LINES = 4  # the command and its `(first: ...)` stand in the preset's first comment lines


def preset_command(experiment: str, config_dir: Path = CONFIG_DIR) -> str | None:
    """The command a preset's header gives, preceded by `FIRST && ` when the header says what to run first;
    None when the preset names no command."""
    try:
        text = (Path(config_dir) / "experiment" / f"{experiment}.yaml").read_text(encoding="utf-8")
    except OSError:
        return None
    header = []
    for line in text.splitlines()[:_HEADER_LINES]:
        if not line.startswith("#"):
            break
        header.append(line.lstrip("#").strip())
    command = next((line.split("  ", 1)[0] for line in header if line.startswith("nnexp ")), None)
    if command is None:
        return None
    first = re.search(r"\(first: (.+)\)\s*$", "\n".join(header), flags=re.M)
    return f"{first.group(1)} && {command}" if first else command


@contextlib.contextmanager
def naming_the_preset_command(cfg: DictConfig) -> Iterator[None]:
    """Checks run inside: a required value left unset in a preset that names its command is refused with
    that command (`data.path is required: experiment=lectures/gp_relu runs as: python -m ... && nnexp`)."""
    try:
        yield
    except ConfigError as error:
        experiment = OmegaConf.select(cfg, "hydra.runtime.choices.experiment", default=None)
        message = str(error)
        command = preset_command(str(experiment)) if experiment else None
        if command is None or " required: " not in message:
            raise
        missing = message.split(": ", 1)[0]
        raise ConfigError(f"{missing}: experiment={experiment} runs as: {command}", key=error.key) from None


__all__ = ["naming_the_preset_command", "preset_command"]
