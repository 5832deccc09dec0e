"""Errors that are the user's to fix: reported as one line with an exit code, never as a traceback."""

import errno
import os
import shlex
import sys
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NoReturn


# A learner diagnostic (nnexp/diagnostics/): the checks during a run yield them, and the errors that stop
# a run over a classic mistake (a loss that does not fit the task, a NaN loss) carry one into summary.json.
@dataclass(frozen=True)
class Finding:
    code: str  # stable, e.g. "stuck-loss": what tests, reports and users grep for
    message: str  # what was seen, with the numbers
    hint: str  # what to try
    epoch: int | None = None  # None: found before training
    expected: bool = False  # the experiment declares it demonstrates this mistake
    resolved_at: int | None = None  # the epoch from which it no longer held (the model went on to learn)

    def line(self) -> str:
        when = "before training" if self.epoch is None else f"epoch {self.epoch}"
        note = " (this experiment demonstrates it)" if self.expected else ""
        if self.resolved_at is not None:
            note += f" (resolved at epoch {self.resolved_at})"
        return f"[{self.code}] {when}: {self.message}; try: {self.hint}{note}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def refuse(self, error_class: type[Exception]) -> Exception:
        """The error that stops a run over this mistake, carrying the finding for summary.json."""
        error = error_class(f"[{self.code}] {self.message}: {self.hint}")
        error.finding = self
        return error


def command_line(*args: str | os.PathLike[str]) -> str:
    """A command to suggest to the user, each argument shell-quoted where it needs to be: pasted into a
    shell it runs exactly these arguments, whatever a folder's name holds (`$(...)`, spaces, quotes).
    `outputs/2026-11-23/08-00-00` stays as it is."""
    return " ".join(shlex.quote(os.fspath(arg)) for arg in args)


class UserError(Exception):
    """A mistake in the config, the command line or the input data. The message names the fix."""

    exit_code = 2
    finding = None  # a learner-diagnostics Finding, when the mistake is one of the classic ones


class ConfigError(UserError):
    """A config value that is missing, of the wrong type or out of range."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key  # the offending key, when there is one


ENVIRONMENT_EXIT_CODE = 4  # the machine refused: disk full, permission denied, read-only folder


class OutputError(UserError):
    """The run folder cannot be written (no space, no permission): not a bug, nor a usage error."""

    exit_code = ENVIRONMENT_EXIT_CODE


# The faults of the machine rather than of nnexp or its user, by errno: what the one line calls them.
ENVIRONMENT_FAULTS = {
    errno.ENOSPC: "disk is full",
    errno.EDQUOT: "disk is full",  # the user's quota: the same fix, from the user's side
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EROFS: "read-only file system",
}


class EnvironmentFault(OutputError):
    """A write the machine refused (disk full, permission denied, read-only file system), as one line:
    `<path>: <what>: <fix>`. Exit code 4."""

    def __init__(self, path: str | os.PathLike[str], what: str, fix: str) -> None:
        super().__init__(f"{path}: {what}: {fix}")
        self.path, self.what = Path(path), what


def environment_fault(
    error: BaseException, path: str | os.PathLike[str] | None = None, then: str = "run it again"
) -> EnvironmentFault | None:
    """The EnvironmentFault `error` is (or was caused by), else None.

    `path` names the file when the OSError does not; `then` is what to do once the machine is fixed
    (e.g. "resume with: nnexp resume=RUN").
    """
    if isinstance(error, EnvironmentFault):
        return error
    seen: set[int] = set()
    cause: BaseException | None = error
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, OSError) and cause.errno in ENVIRONMENT_FAULTS:
            break
        cause = cause.__cause__ or cause.__context__
    else:
        return None
    assert isinstance(cause, OSError)
    where = Path(cause.filename if cause.filename is not None else path if path is not None else os.getcwd())
    what = ENVIRONMENT_FAULTS[cause.errno]
    folder = next((folder for folder in (where, *where.parents) if folder.is_dir()), where.parent)
    if what == "disk is full":
        fix = f"free some space there ({command_line('df', '-h', folder)} shows what is left), then {then}"
    elif what == "read-only file system":
        fix = f"{folder} is on a read-only mount: remount it read-write, then {then}"
    else:
        fix = f"make {folder} writable for this user (ls -ld {folder} shows its owner), then {then}"
    return EnvironmentFault(where, what, fix)


class DataError(UserError):
    """Input data that is missing, unreadable or does not match the config."""


def unwritable_folder(folder: str | os.PathLike[str]) -> EnvironmentFault:
    """The fault of a folder `os.access` says cannot be written: read-only mount, or no permission."""
    try:
        read_only = bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        read_only = False
    code = errno.EROFS if read_only else errno.EACCES
    fault = environment_fault(OSError(code, os.strerror(code), str(folder)), then="run it again")
    assert fault is not None
    return fault


def first_line(error: BaseException) -> str:
    """The first line of an error's message (its type's name when it has none): for one-line reports."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def exit_with(error: UserError) -> NoReturn:
    """Print the one-line message and leave with the error's exit code; the trace on request."""
    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        traceback.print_exception(error)
    sys.stderr.write(f"nnexp: error: {one_line(str(error))}\n")
    sys.exit(error.exit_code)


def shown(value: object, limit: int = 120) -> str:
    """`value` quoted in a one-line message: control characters escaped, long text cut."""
    text = one_line(str(value))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def one_line(text: str) -> str:
    """`text` with its control characters escaped: a name from a run folder can neither break the one line
    nor send the terminal an escape sequence."""
    return "".join(repr(char)[1:-1] if ord(char) < 32 or ord(char) == 127 else char for char in text)
