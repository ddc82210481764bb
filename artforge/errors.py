"""User-facing errors: the CLI prints them as one line, with no traceback."""

from __future__ import annotations

import os


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message (cut to ``limit``), or its class name when it has none:
    libraries' errors often run over many lines, and the CLI prints one."""
    text = str(exc).strip()
    return text.splitlines()[0][:limit] if text else type(exc).__name__


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
        # a name holding a line break (legal on Linux) must not split the one-line message
        shown = self.path.translate({10: "\\n", 13: "\\r"})
        super().__init__(f"{shown}: {reason}")
