"""Printing tables with rich, treating every cell as plain text (plugin strings may hold '[...]'), and
keeping the stdout of ``--json`` commands for their JSON."""

from __future__ import annotations

import contextlib
import functools
import sys
from collections.abc import Callable, Iterable
from typing import Any

import click

#: the real stdout of each ``--json`` command running (innermost last), while its own stdout is stderr
_JSON_STDOUT: list[Any] = []


def json_stdout(command: Callable) -> Callable:
    """For a command with ``--json`` (its ``as_json`` parameter): while it runs with ``--json``, whatever
    is printed (plugin code: a codec's encode, a model's constructor or evaluate, a lazy import) goes
    to stderr, and only :func:`echo_json` writes to stdout, so the output is JSON that parses. Put it
    under the click decorators."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        if not kwargs.get("as_json"):
            return command(*args, **kwargs)
        _JSON_STDOUT.append(sys.stdout)
        try:
            with contextlib.redirect_stdout(sys.stderr):
                return command(*args, **kwargs)
        finally:
            _JSON_STDOUT.pop()

    return run


def echo_json(text: str) -> None:
    """A ``--json`` command's output, on the real stdout (see :func:`json_stdout`)."""
    click.echo(text, file=_JSON_STDOUT[-1] if _JSON_STDOUT else None)


def print_table(headers: Iterable[str], rows: Iterable[Iterable[Any]], styles: dict[int, str] | None = None,
                **table_options: Any) -> None:
    """One rich table on stdout; ``styles`` maps a column index to a rich style for that column."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(*headers, **table_options)
    for row in rows:
        table.add_row(*(Text(str(c), style=(styles or {}).get(i, "")) for i, c in enumerate(row)))
    Console().print(table)
