"""What a record table is made of: its columns, and how a status cell is coloured."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from rich.text import Text

# ANSI names, so the ANSI theme shows the terminal's own colours and the others map
# them through their palette.
STATUS_STYLES = {
    "OPEN": "green", "ACCEPTED": "green", "PAID_FULL": "green", "COMPLETE": "green", "SETTLED": "green",
    "PAID_PARTIAL": "cyan", "HELD": "cyan", "AWAITING_CLAIM": "yellow", "BOOKED": "dim", "RESOLVED": "green",
    "AWAITING_FUNDING": "yellow", "AWAITING_STAKE": "yellow", "QUEUED": "yellow", "PENDING": "yellow",
    "EVALUATING": "bold yellow", "RUNNING": "bold yellow", "RECEIVED": "yellow", "DRAFT": "yellow",
    "REJECTED": "red", "FAILED": "red", "CANCELED": "red", "HOLDBACK_FORFEITED": "red", "EXPIRED": "red",
    "FLAGGED": "bold magenta", "CLOSED": "dim",
}


def plain(cell: Any) -> str:
    return cell.plain if isinstance(cell, Text) else str(cell)


def status_text(status: str) -> Text:
    return Text(status, style=STATUS_STYLES.get(status, ""))


@dataclass(frozen=True)
class Column:
    label: str
    cell: Callable[[Any], Any]  # record -> str or rich Text shown in the table
    width: int | None = None
    sort: Callable[[Any], Any] | None = None  # record -> sort key (default: the cell's text)
    shrink: int | None = None  # narrowest width when the table is short of room (ids, reasons)
    drop: int | None = None  # hidden when still short of room, lowest first (the detail view has it)
