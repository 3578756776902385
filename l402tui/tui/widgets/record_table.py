"""A DataTable of typed records (dataclass rows) that keeps the cursor on the same
record across reloads and can export exactly what it holds."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Generic, Sequence, TypeVar

from rich.text import Text
from textual.widgets import DataTable

R = TypeVar("R")

# ANSI names, so the ANSI theme shows the terminal's own colours and the others map
# them through their palette.
STATUS_STYLES = {
    "OPEN": "green", "ACCEPTED": "green", "PAID_FULL": "green", "COMPLETE": "green", "SETTLED": "green",
    "PAID_PARTIAL": "cyan", "HELD": "cyan",
    "AWAITING_FUNDING": "yellow", "AWAITING_STAKE": "yellow", "QUEUED": "yellow", "PENDING": "yellow",
    "EVALUATING": "bold yellow", "RUNNING": "bold yellow", "RECEIVED": "yellow", "DRAFT": "yellow",
    "REJECTED": "red", "FAILED": "red", "CANCELED": "red", "HOLDBACK_FORFEITED": "red", "EXPIRED": "red",
    "FLAGGED": "bold magenta", "CLOSED": "dim",
}


def status_text(status: str) -> Text:
    return Text(status, style=STATUS_STYLES.get(status, ""))


@dataclass(frozen=True)
class Column:
    label: str
    cell: Callable[[Any], Any]  # record -> str or rich Text shown in the table
    width: int | None = None


class RecordTable(DataTable, Generic[R]):
    """Subclasses set COLUMNS, EXPORT_NAME and how to find a record's key and copy text."""

    COLUMNS: ClassVar[tuple[Column, ...]] = ()
    EXPORT_NAME: ClassVar[str] = "table"
    EMPTY_TEXT: ClassVar[str] = "nothing yet"

    def __init__(self, *, clock: Callable[[], float] = time.time, id: str | None = None,
                 classes: str | None = None):
        super().__init__(id=id, classes=classes, cursor_type="row", zebra_stripes=False)
        self.clock = clock
        self.records: list[R] = []

    def on_mount(self) -> None:
        for column in self.COLUMNS:
            self.add_column(column.label, width=column.width, key=column.label)

    def record_key(self, record: R) -> str:
        return str(getattr(record, "id"))

    def copy_text(self, record: R) -> str:
        """What `y` copies: the record's id unless a subclass knows better (an invoice)."""
        return self.record_key(record)

    def set_records(self, records: Sequence[R]) -> None:
        """Replace the rows, keeping the cursor on the record it was on if it is still there."""
        selected = self.selected_record
        keep_key = self.record_key(selected) if selected is not None else None
        self.records = list(records)
        self.clear()
        keys = [self.record_key(r) for r in self.records]
        seen: set[str] = set()
        rows = []
        for record, key in zip(self.records, keys):
            cells = [column.cell(record) for column in self.COLUMNS]
            rows.append((cells, key if key not in seen else None))
            seen.add(key)
        for cells, key in rows:
            self.add_row(*cells, key=key)
        if keep_key is not None and keep_key in seen:
            self.move_cursor(row=keys.index(keep_key), animate=False, scroll=True)

    @property
    def selected_record(self) -> R | None:
        if not self.records or not (0 <= self.cursor_row < len(self.records)):
            return None
        return self.records[self.cursor_row]

    def export_rows(self) -> tuple[list[str], list[list[Any]]]:
        """Header and rows with full, unformatted values (ids unshortened, msat exact)."""
        if not self.records:
            return [], []
        fields = [f.name for f in dataclasses.fields(self.records[0])]  # type: ignore[arg-type]
        return fields, [[getattr(r, name) for name in fields] for r in self.records]
