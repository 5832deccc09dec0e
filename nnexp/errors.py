"""Errors that are the user's to fix: reported as one line with an exit code, never as a traceback."""

import os
import sys
import traceback
from typing import NoReturn


class UserError(Exception):
    """A mistake in the config, the command line or the input data. The message names the fix."""

    exit_code = 2
    finding = None  # a learner-diagnostics Finding, when the mistake is one of the classic ones


class ConfigError(UserError):
    """A config value that is missing, of the wrong type or out of range."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key  # the offending key, when there is one


class OutputError(UserError):
    """The run folder cannot be written (no space, no permission): not a bug, but not a usage error."""

    exit_code = 1


class DataError(UserError):
    """Input data that is missing, unreadable or does not match the config."""


def first_line(error: BaseException) -> str:
    """The first line of an error's message (its type's name when it has none): for one-line reports."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def exit_with(error: UserError) -> NoReturn:
    """Print the one-line message and leave with the error's exit code; the trace on request."""
    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        traceback.print_exception(error)
    sys.stderr.write(f"nnexp: error: {error}\n")
    sys.exit(error.exit_code)
