"""User-facing errors: the CLI prints them as one line, with no traceback."""

from __future__ import annotations

import os


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message (cut to ``limit``), or its class name when it has none:
    libraries' errors often run over many lines, and the CLI prints one."""
    text = str(exc).strip()
    return text.splitlines()[0][:limit] if text else type(exc).__name__


def shown(name: str | os.PathLike) -> str:
    """A file name as one line of output: line breaks (legal in names on Linux) escaped as \\n, \\r."""
    return str(name).translate({10: "\\n", 13: "\\r"})


def as_text(value) -> str:
    """An item name from a numpy array as text: a bytes name (an ``S`` array) is decoded, not shown as
    ``b'cat'``; bytes that are not UTF-8 become ``\\xNN`` escapes."""
    return value.decode("utf-8", "backslashreplace") if isinstance(value, bytes) else str(value)


class ArtforgeError(Exception):
    """An error caused by the user's input or environment, shown as one line."""


class ContractError(ArtforgeError):
    """Plugin code (a codec, model or renderer) returned what its contract rules out, or failed on input
    that passed the checks; the message names that code, not the files made from or fed to it."""


class BadInput(ArtforgeError):
    """A file that cannot be used; the message names the file and the problem."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{shown(self.path)}: {reason}")  # a name's line break must not split the line
