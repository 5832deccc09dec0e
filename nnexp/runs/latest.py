"""`outputs/latest`: a relative symbolic link to the newest run folder (a sweep's: the sweep folder).

Set the moment a new folder is claimed (cli/hydra_hooks.py, for the command and for nnexp.run), so
`ls outputs/latest/` shows a run while it trains. The link sits in the first folder of the folder pattern
(`outputs/` for both `outputs/DATE/TIME` and `outputs/multirun/DATE/TIME`) and is swapped in one rename
(nnexp/atomic.py), so two runs starting together leave it naming one of them, never nothing and never
half a link. Where the file system has no symbolic links (some network and FAT mounts), `latest.txt`
beside it holds the same relative path instead. A `latest` that is not a link (the user's own file or
folder) is left as it is, with one warning line. (Standard library only: imported while Hydra starts.)
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
from pathlib import Path

from nnexp.atomic import link_atomically, write_atomically

LATEST = "latest"
LATEST_TEXT = "latest.txt"  # where symbolic links cannot be made: the relative path, one line
_NO_SYMLINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}
# folder this process pointed latest at -> (the folder holding latest, what latest named before)
_BEFORE: dict[Path, tuple[Path, str | None]] = {}


def latest_home(folder: str | os.PathLike[str]) -> Path | None:
    """The folder that holds `latest` for a run folder written as `folder`: its first folder when the
    path is relative and deeper than one level (outputs/2026-12-07/11-52-40 -> outputs), else None."""
    parts = Path(folder).parts
    if Path(folder).is_absolute() or len(parts) < 2:
        return None
    return Path(parts[0])


def point_latest(folder: str | os.PathLike[str]) -> Path | None:
    """Point `latest` at `folder` (just made); returns the link (or latest.txt) written, None if none was.
    Never raises: a run never fails because its shortcut could not be made."""
    home = latest_home(folder)
    if home is None:
        return None
    link = home / LATEST
    target = os.path.relpath(Path(folder).absolute(), home.absolute())
    if os.path.lexists(link) and not link.is_symlink():
        _warn(f"{link} is not nnexp's link (a file or folder of yours): left as it is; this run: {folder}")
        return None
    previous = _read_link(link)
    try:
        written = link_atomically(link, target)
    except (OSError, NotImplementedError) as error:
        if isinstance(error, OSError) and error.errno not in _NO_SYMLINKS:
            _warn(f"could not point {link} at {folder}: {error.strerror or error}")
            return None
        try:  # no symbolic links here: the path as text
            written = write_atomically(home / LATEST_TEXT, target + "\n", durable=False)
        except OSError as text_error:
            _warn(f"could not write {home / LATEST_TEXT}: {text_error.strerror or text_error}")
            return None
    _BEFORE[Path(folder).absolute()] = (home.absolute(), previous)
    return written


def forget_latest(folder: str | os.PathLike[str]) -> None:
    """A claimed folder is being removed again (a mistake found after it was made): if `latest` still
    names it, point it back at what it named before, or remove it if that is gone too."""
    if Path(folder).absolute() not in _BEFORE:
        return  # this process never pointed latest at it
    home, previous = _BEFORE.pop(Path(folder).absolute())
    link = home / LATEST
    if _read_link(link) != os.path.relpath(Path(folder).absolute(), home):
        return  # another run has taken it since
    with contextlib.suppress(OSError):
        if previous is not None and (home / previous).is_dir():
            link_atomically(link, previous)
        else:
            link.unlink()


def _read_link(link: Path) -> str | None:
    try:
        return os.readlink(link)
    except OSError:
        return None


def _warn(message: str) -> None:
    sys.stderr.write(f"nnexp: warning: {message}\n")


__all__ = ["LATEST", "LATEST_TEXT", "forget_latest", "latest_home", "point_latest"]
