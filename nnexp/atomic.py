"""nnexp's one way to write a whole file: whole or not at all, never half a file, never a temporary left.

The bytes go to a temporary file beside the target (same folder, so the same file system:
`.<name>.<random>.tmp`), are fsynced, and the temporary is renamed over the target (os.replace, atomic on
POSIX). Whatever goes wrong (a full disk, a permission, a signal's SystemExit), the temporary is removed
and the previous file is untouched. (Standard library only: imported by what runs before torch.)
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

TEMPORARY_SUFFIX = ".tmp"
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
_NAME_TRIES = 100
_UMASK = os.umask(0o022)  # read once, at import (setting it is the only way to read it)
os.umask(_UMASK)
_BEING_WRITTEN: set[Path] = set()  # this process's temporaries now: remove_unfinished() knows them


def remove_unfinished() -> None:
    """Remove the temporaries this process is writing now: for a process that ends at once, without
    unwinding to the clean-up in write_atomically (a forked child whose stop was swallowed)."""
    for temporary in list(_BEING_WRITTEN):
        with contextlib.suppress(OSError):
            temporary.unlink()


def write_atomically(
    path: str | os.PathLike[str], content: bytes | str | Callable[[IO[bytes]], Any], *, durable: bool = True
) -> Path:
    """Replace `path` with `content` (bytes, text written as UTF-8, or a function that writes into the
    binary file it is given, e.g. `lambda file: torch.save(state, file)`); returns the path.

    An OSError raised while writing carries the target's name (`error.filename`), also when it surfaced
    through a library that wraps it (torch.save reports a failed write as a RuntimeError). `durable`:
    fsync the file and its folder, so a power cut keeps either the old file or the new one.
    """
    target = Path(path)
    for _ in range(_NAME_TRIES):
        # The name is chosen before the file exists, so whenever a stop's SystemExit lands (Python runs a
        # handler between any two steps, whichever thread the signal reached), the clean-up below knows
        # the file to remove: mkstemp could be stopped after creating its file but before naming it.
        temporary = target.parent / f".{target.name}.{secrets.token_hex(4)}{TEMPORARY_SUFFIX}"
        try:
            try:
                descriptor = os.open(temporary, _CREATE, 0o600)
            except FileExistsError:
                continue  # another writer's temporary: never touched, another name tried
            except OSError as error:  # a read-only or foreign folder: named by the file to be written
                raise _named(error, target) from None
            _BEING_WRITTEN.add(temporary)
            with os.fdopen(descriptor, "wb") as raw:
                handle = _Recording(raw)
                try:
                    if callable(content):
                        content(handle)  # type: ignore[arg-type]
                    else:
                        handle.write(content.encode("utf-8") if isinstance(content, str) else content)
                    handle.flush()
                    if durable:
                        os.fsync(raw.fileno())
                except BaseException as error:
                    raise _named(handle.failure or error, target) from None
            with contextlib.suppress(OSError):  # 0600 while written: as readable as a file open() creates
                os.chmod(temporary, 0o666 & ~_UMASK)
            try:
                os.replace(temporary, target)
            except OSError as error:
                raise _named(error, target) from None
        except BaseException:
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise
        finally:
            _BEING_WRITTEN.discard(temporary)
        break
    else:
        raise FileExistsError(errno.EEXIST, "no free name for a temporary file", str(target))
    if durable:
        _sync_folder(target.parent)
    return target


def link_atomically(link: str | os.PathLike[str], target: str | os.PathLike[str]) -> Path:
    """Point the symbolic link `link` at `target` (written as given: pass a relative path for a link that
    survives moving the folder), replacing the link that was there in one step: a reader sees the old
    target or the new one, never no link. The caller checks that `link`, if present, is a link nnexp may
    replace: os.replace would put this over a file as well. OSError where the file system has no symbolic
    links (the temporary link is then never made) or the rename is refused (the temporary is removed)."""
    path = Path(link)
    for _ in range(_NAME_TRIES):
        temporary = path.parent / f".{path.name}.{secrets.token_hex(4)}{TEMPORARY_SUFFIX}"
        try:
            os.symlink(target, temporary)
        except FileExistsError:
            continue  # another writer's temporary: another name
        try:
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise
        return path
    raise FileExistsError(errno.EEXIST, "no free name for a temporary link", str(path))


def leftover_temporaries(folder: str | os.PathLike[str]) -> list[Path]:
    """The temporaries under `folder` that a killed process left (nnexp's own pattern only)."""
    return sorted(path for path in Path(folder).rglob(f".*{TEMPORARY_SUFFIX}") if path.is_file())


class _Recording:
    """A binary file that remembers the OSError its writes met: a library that catches it and raises
    its own error (torch's `[enforce fail at inline_container.cc]`) loses the errno, this keeps it."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self.failure: OSError | None = None

    def write(self, data: Any) -> int:
        try:
            return self._raw.write(data)
        except OSError as error:
            self.failure = self.failure or error
            raise

    def flush(self) -> None:
        try:
            self._raw.flush()
        except OSError as error:
            self.failure = self.failure or error
            raise

    def __getattr__(self, name: str) -> Any:  # tell, seek, fileno, ... as the file has them
        return getattr(self._raw, name)


def _named(error: BaseException, target: Path) -> BaseException:
    """`error`, with the target (not the temporary) as the file it names."""
    if isinstance(error, OSError) and error.errno is not None:
        return OSError(error.errno, error.strerror, str(target))  # OSError picks the subclass
    return error


def _sync_folder(folder: Path) -> None:
    """The rename itself survives a power cut once the folder is synced (best effort: not every file
    system lets a folder be opened or synced)."""
    with contextlib.suppress(OSError):
        descriptor = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


__all__ = ["TEMPORARY_SUFFIX", "leftover_temporaries", "link_atomically", "write_atomically"]
