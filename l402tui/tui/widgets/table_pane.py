"""One tab of the main screen: a record table with its filter box and the line saying
what is filtered or sorted.  The pane answers its table's requests itself, so the app
only fills it with rows."""

from __future__ import annotations

from typing import Callable

from textual import on
from textual.app import ComposeResult
from textual.widgets import Input, Static, TabPane

from l402tui.tui.widgets.record_table import RecordTable
from l402tui.tui.widgets.table_filter import TableFilter

QUERY_HINT = "  (/ filter · F status · o sort · esc in the box clears)"


class TablePane(TabPane):
    def __init__(self, tab: str, table: type[RecordTable], *, clock: Callable[[], float]):
        super().__init__(tab.capitalize(), id=tab, classes="-is-empty")
        self.tab = tab
        self.table_class = table
        self.clock = clock

    def compose(self) -> ComposeResult:
        yield TableFilter(placeholder="filter: words in any column (enter: keep, esc: clear)",
                          id=f"{self.tab}-filter", classes="table-filter", compact=True)
        yield Static(id=f"{self.tab}-query", classes="query-line")
        yield self.table_class(id=f"{self.tab}-table", clock=self.clock)
        yield Static(self.table_class.EMPTY_TEXT, classes="empty")

    @property
    def table(self) -> RecordTable:
        return self.query_one(RecordTable)

    def fill(self, rows: list) -> None:
        self.table.set_records(rows)
        self.set_class(not rows, "-is-empty")

    @on(RecordTable.FilterRequested)
    def _open_filter(self, event: RecordTable.FilterRequested) -> None:
        event.stop()
        box = self.query_one(TableFilter)
        self.add_class("-filtering")
        box.value = event.table.filter_text
        box.focus()

    @on(Input.Changed, ".table-filter")
    def _filter_typed(self, event: Input.Changed) -> None:
        event.stop()
        self.table.set_filter(event.value)

    @on(Input.Submitted, ".table-filter")
    def _filter_kept(self, event: Input.Submitted) -> None:
        event.stop()
        self.remove_class("-filtering")
        self.table.focus()

    @on(TableFilter.Closed)
    def _filter_closed(self, event: TableFilter.Closed) -> None:
        event.stop()
        self.remove_class("-filtering")
        self.table.set_filter("")
        self.table.focus()

    @on(RecordTable.QueryChanged)
    def _query_changed(self, event: RecordTable.QueryChanged) -> None:
        event.stop()
        summary = event.table.query_summary()
        self.query_one(".query-line", Static).update(summary + (QUERY_HINT if summary else ""))
        self.set_class(bool(summary), "-queried")
