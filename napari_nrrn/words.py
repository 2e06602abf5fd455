"""How messages are worded: counts with the right plural, and errors whose fix is worded for each front end
(the Python API names arguments, the command line names options)."""

from __future__ import annotations


def plural(count: int, word: str, words: str | None = None) -> str:
    """``"1 slice"``, ``"2 slices"``; ``words`` for a plural that is not ``word + "s"``."""
    return f"{count} {word if count == 1 else words or word + 's'}"


def for_cli(error: Exception, message: str) -> Exception:
    """``error``, worded for the Python API, carrying ``message``: the same, worded for the command line."""
    error.cli_message = message
    return error


def cli_message(error: Exception) -> str:
    """What the command line prints for ``error``."""
    return getattr(error, "cli_message", None) or str(error)


def exists_error(path) -> FileExistsError:
    """The refusal to replace an existing output, in both wordings."""
    exists = f"{path} already exists: choose another name, or"
    error = FileExistsError(f"{exists} pass overwrite=True to replace it")
    return for_cli(error, f"{exists} add --overwrite to replace it")
