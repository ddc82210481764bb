"""User-facing errors: the CLI prints them as one line, with no traceback."""

from __future__ import annotations

import os


class ArtforgeError(Exception):
    """An error caused by the user's input or environment, shown as one line."""


class BadInput(ArtforgeError):
    """A file that cannot be used; the message names the file and the problem."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")
