"""Printing tables with rich, treating every cell as plain text (plugin strings may hold '[...]')."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


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
