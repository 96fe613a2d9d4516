"""Terminal tables that never cut an id: id columns keep their whole width, the others wrap or fold."""

from __future__ import annotations

from collections.abc import Sequence

from rich import box
from rich.console import Console
from rich.table import Table

SHORT = 11  # a column whose values are all this short (a state, a count, a time) keeps them on one line


def when(iso: str | None) -> str:
    """A compact UTC time for tables ("11-30 00:29"); `--json` keeps the full ISO-8601 value."""
    return (iso or "")[5:16].replace("T", " ")


def print_table(
    console: Console, headers: Sequence[str], rows: Sequence[Sequence[str]], *, keep: Sequence[str] = ()
) -> None:
    """Print rows under headers; columns named in `keep` (ids) are never cut or wrapped, whatever the
    terminal's width, nor are short values (a state, a count); the other columns give way (text wraps,
    a long word folds)."""
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, collapse_padding=True)
    for i, name in enumerate(headers):
        widest = max((len(row[i]) for row in rows), default=0)
        if name in keep or widest <= SHORT:
            table.add_column(name, no_wrap=True, min_width=widest)
        else:
            table.add_column(name, overflow="fold")
    for row in rows:
        table.add_row(*row)
    console.print(table)


def print_with_notes(
    console: Console,
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    notes: Sequence[str],
    *,
    keep: Sequence[str] = (),
    note_chars: int = 500,
) -> None:
    """A table, then one line per row that would not fit in a column (an error, field problems):
    each starts with the row's id and wraps at the terminal's width, whole up to `note_chars`."""
    print_table(console, headers, rows, keep=keep)
    if notes:
        console.print()
    for note in notes:
        console.print(note[:note_chars], highlight=False)
