"""A virtualised table of typed records (dataclass rows), built on the line API.

Textual's DataTable measures every cell of every row when rows are added, which
costs seconds for 10,000 submissions.  This table renders only the rows on screen:
column widths come from the header and a sample of the rows, each drawn row is a
cached Strip, so loading is O(rows) with a small constant and paging is O(screen).
It keeps the cursor on the same record across reloads and exports what it holds.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, ClassVar, Generic, Sequence, TypeVar

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.cache import LRUCache
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from l402tui.tui.actions import TABLE_ACTIONS, make_bindings
from l402tui.tui.table_query import build_index, matching, sort_records
from l402tui.tui.widgets.column_fit import GAP, fit_widths, table_width
from l402tui.tui.widgets.columns import Column, plain, status_text  # noqa: F401 - status_text re-exported

R = TypeVar("R")
SAMPLE_ROWS = 500  # rows measured for column widths; later rows are cut to fit
MAX_COLUMN = 60  # natural width cap; a capped column grows back when the table has room

class RecordTable(ScrollView, Generic[R], can_focus=True):
    """Subclasses set COLUMNS, EXPORT_NAME and how to find a record's key and copy text."""

    COLUMNS: ClassVar[tuple[Column, ...]] = ()
    EXPORT_NAME: ClassVar[str] = "table"
    EMPTY_TEXT: ClassVar[str] = "nothing yet"

    BINDINGS = [
        Binding("up", "cursor(-1)", "Up", show=False, id="table_up"),
        Binding("down", "cursor(1)", "Down", show=False, id="table_down"),
        Binding("pageup", "page(-1)", "Page up", show=False, id="table_page_up"),
        Binding("pagedown", "page(1)", "Page down", show=False, id="table_page_down"),
        Binding("home", "jump(0)", "First", show=False, id="table_first"),
        Binding("end", "jump(-1)", "Last", show=False, id="table_last"),
        *make_bindings(TABLE_ACTIONS),
    ]
    COMPONENT_CLASSES = {"record-table--header", "record-table--cursor"}
    DEFAULT_CSS = """
    RecordTable { background: $surface; }
    RecordTable > .record-table--header { text-style: bold; background: $panel; color: $foreground; }
    RecordTable > .record-table--cursor { background: $primary 35%; }
    RecordTable:focus > .record-table--cursor { background: $block-cursor-background;
                                                color: $block-cursor-foreground; text-style: bold; }
    """

    cursor_row: reactive[int] = reactive(0, init=False)

    class RowChosen(Message):
        """Enter (or a click on the selected row) on a record."""

        def __init__(self, table: "RecordTable", record: Any):
            super().__init__()
            self.table = table
            self.record = record

        @property
        def control(self) -> "RecordTable":
            return self.table

    class FilterRequested(Message):
        """`/` on the table: the screen shows the filter box for it."""

        def __init__(self, table: "RecordTable"):
            super().__init__()
            self.table = table

    class QueryChanged(Message):
        """The filter, status filter or sort changed (the screen redraws its filter line)."""

        def __init__(self, table: "RecordTable"):
            super().__init__()
            self.table = table

    def __init__(self, *, clock: Callable[[], float] = time.time, id: str | None = None,
                 classes: str | None = None):
        super().__init__(id=id, classes=classes)
        self.clock = clock
        self.all_records: list[R] = []  # everything loaded
        self.records: list[R] = []  # what is shown: filtered and sorted
        self.filter_text = ""
        self.status_filter: str | None = None
        self.sort_index: int | None = None  # None: the source's order (newest first)
        self.sort_reverse = False
        self._index: list[str] | None = None  # search text per record, built on first filter
        self._natural: list[int] = []
        self._full: list[int] = []  # uncapped: how far a capped column may grow
        self._widths: list[int] = []
        self._cells: LRUCache[int, list[Text]] = LRUCache(4096)  # row index -> cell texts
        self._strips: LRUCache[tuple, Strip] = LRUCache(1024)

    # --- content ---------------------------------------------------------------------
    def record_key(self, record: R) -> str:
        return str(getattr(record, "id"))

    def copy_text(self, record: R) -> str:
        """What `y` copies: the record's id unless a subclass knows better (an invoice)."""
        return self.record_key(record)

    def set_records(self, records: Sequence[R]) -> None:
        """Replace the rows, keeping the cursor on the record it was on if it is still there."""
        self.all_records = list(records)
        self._index = None
        self._apply(measure=True)

    @property
    def columns(self) -> tuple[Column, ...]:
        return tuple(self.COLUMNS)

    def _apply(self, measure: bool = False) -> None:
        """Recompute the shown rows from all rows, the filter and the sort."""
        selected = self.selected_record
        keep_key = self.record_key(selected) if selected is not None else None
        rows = self.all_records
        if self.filter_text.strip() or self.status_filter is not None:
            if self._index is None:
                self._index = build_index(rows)
            rows = matching(rows, self._index, self.filter_text, self.status_filter)
        if self.sort_index is not None:
            column = self.columns[self.sort_index]
            key = column.sort or (lambda r, c=column: plain(c.cell(r)))
            rows = sort_records(list(rows), key, self.sort_reverse)
        self.records = list(rows)
        self._cells.clear()
        self._strips.clear()
        if measure or not self._natural:
            self._measure()
        row = 0
        if keep_key is not None:
            for index, record in enumerate(self.records):
                if self.record_key(record) == keep_key:
                    row = index
                    break
        self.set_reactive(RecordTable.cursor_row, min(row, max(len(self.records) - 1, 0)))
        self._fit()
        self._scroll_cursor_into_view()
        self.refresh()
        if self.is_attached:  # the selected record may be new: the footer offers what applies to it (Fund)
            self.app.refresh_bindings()

    # --- filtering and sorting --------------------------------------------------------
    def set_filter(self, text: str) -> None:
        if text != self.filter_text:
            self.filter_text = text
            self._apply()
            self.post_message(self.QueryChanged(self))

    def set_status_filter(self, status: str | None) -> None:
        self.status_filter = status
        self._apply()
        self.post_message(self.QueryChanged(self))

    def sort_by(self, index: int | None, reverse: bool | None = None) -> None:
        if index is not None and not 0 <= index < len(self.columns):
            return
        if reverse is None:  # the same column again flips the direction
            reverse = not self.sort_reverse if index == self.sort_index else False
        self.sort_index, self.sort_reverse = index, reverse
        self._strips.clear()
        self._apply()
        self.post_message(self.QueryChanged(self))

    def query_summary(self) -> str:
        """e.g. "12 of 300 rows · /flag · FLAGGED · sorted by Paid ▼" ("" when showing everything)."""
        parts = []
        if self.filter_text.strip():
            parts.append(f"/{self.filter_text.strip()}")
        if self.status_filter:
            parts.append(f"status {self.status_filter}")
        if self.sort_index is not None:
            parts.append(f"sorted by {self.columns[self.sort_index].label} {'▼' if self.sort_reverse else '▲'}")
        if not parts:
            return ""
        return f"{len(self.records):,} of {len(self.all_records):,} rows · " + " · ".join(parts)

    def action_filter(self) -> None:
        self.post_message(self.FilterRequested(self))

    def action_sort_next(self) -> None:
        nxt = 0 if self.sort_index is None else self.sort_index + 1
        self.sort_by(None if nxt >= len(self.columns) else nxt, reverse=False)

    def action_sort_reverse(self) -> None:
        if self.sort_index is not None:
            self.sort_by(self.sort_index, reverse=not self.sort_reverse)

    def action_status_filter(self) -> None:
        """Cycle through the statuses present (FLAGGED first: what needs a person), then all."""
        present = sorted({getattr(r, "status", None) for r in self.all_records} - {None},
                         key=lambda s: (s != "FLAGGED", s))
        if not present:
            return
        if self.status_filter not in present:
            nxt = present[0]
        else:
            i = present.index(self.status_filter) + 1
            nxt = present[i] if i < len(present) else None
        self.set_status_filter(nxt)

    def _row_cells(self, index: int) -> list[Text]:
        cells = self._cells.get(index)
        if cells is None:
            record = self.records[index]
            cells = [c if isinstance(c, Text) else Text(str(c)) for c in (col.cell(record) for col in self.COLUMNS)]
            for cell in cells:
                if cell.style:  # Text.render draws spans only: make the whole-text style a span
                    cell.stylize_before(cell.style)
                    cell.style = ""
            self._cells[index] = cells
        return cells

    def _measure(self) -> None:
        widths = [len(col.label) for col in self.columns]  # the sort arrow is drawn in the gap
        for index in range(min(len(self.records), SAMPLE_ROWS)):
            for i, cell in enumerate(self._row_cells(index)):
                widths[i] = max(widths[i], cell.cell_len)
        self._full = [w if col.width is None else col.width for w, col in zip(widths, self.columns)]
        self._natural = [min(w, MAX_COLUMN) for w in self._full]

    def _fit(self) -> None:
        """Share the width among the columns (see column_fit: shrink, drop, grow)."""
        room = self.scrollable_content_region.width or self.size.width
        widths = fit_widths(self.columns, self._natural, self._full, room)
        if widths != self._widths:
            self._widths = widths
            self._strips.clear()
        self.virtual_size = Size(table_width(self._widths), len(self.records) + 1)

    @property
    def shown_columns(self) -> list[str]:
        """Labels of the columns on screen (the others were dropped for want of room)."""
        return [c.label for c, w in zip(self.columns, self._widths) if w > 0]

    def on_resize(self) -> None:
        if self._natural:
            self._fit()
            self.refresh()

    @property
    def selected_record(self) -> R | None:
        if not self.records or not (0 <= self.cursor_row < len(self.records)):
            return None
        return self.records[self.cursor_row]

    def move_cursor(self, *, row: int, **_: Any) -> None:
        if self.records:
            self.cursor_row = max(0, min(row, len(self.records) - 1))

    def export_rows(self) -> tuple[list[str], list[list[Any]]]:
        """Header and rows with full, unformatted values (ids unshortened, msat exact)."""
        if not self.records:
            return [], []
        fields = [f.name for f in dataclasses.fields(self.records[0])]  # type: ignore[arg-type]
        # What is shown (filtered, sorted) is what is exported.
        return fields, [[getattr(r, name) for name in fields] for r in self.records]

    # --- drawing ---------------------------------------------------------------------
    def _line(self, cells: list[Text], style: Style, arrows: dict[int, str] | None = None,
              over: Style | None = None) -> Strip:
        segments: list[Segment] = []
        for i, (cell, width) in enumerate(zip(cells, self._widths)):
            if width <= 0:
                continue  # dropped for want of room
            text = cell.copy()
            text.end = ""
            if cell.justify == "right" and text.cell_len < width:
                text.pad_left(width - text.cell_len)
            text.truncate(width, overflow="ellipsis", pad=True)
            # A header's sort arrow follows its label, or sits in the gap when the label fills the cell.
            arrow = (arrows or {}).get(i, "")
            if arrow and cell.cell_len + 2 <= width:
                text = cell.copy()
                text.end = ""
                text.append(f" {arrow}")
                text.truncate(width, pad=True)
                arrow = ""
            text.append(arrow.rjust(GAP))
            segments.extend(text.render(self.app.console))
        # The row's style underneath, each cell's own style (a status colour) on top; ``over``
        # on top of that (the cursor's text colour: a yellow status on the yellow cursor was unreadable).
        strip = Strip(segments).apply_style(style)
        if over is not None:
            strip = Strip(Segment.apply_style(strip, post_style=over), strip.cell_length)
        return strip.simplify()

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.scrollable_content_region.width
        base = self.rich_style
        if y == 0:
            style = base + self.get_component_rich_style("record-table--header")
            key = ("header", style)
            strip = self._strips.get(key)
            if strip is None:
                labels = [Text(col.label) for col in self.columns]
                arrows = {} if self.sort_index is None else {self.sort_index: "▼" if self.sort_reverse else "▲"}
                strip = self._line(labels, style, arrows)
                self._strips[key] = strip
            return strip.crop_extend(scroll_x, scroll_x + width, style)
        index = scroll_y + y - 1
        if index >= len(self.records):
            return Strip.blank(width, base)
        cursor = index == self.cursor_row
        cursor_style = self.get_component_rich_style("record-table--cursor") if cursor else None
        style = base + cursor_style if cursor_style is not None else base
        key = (index, cursor, self.has_focus, style)
        strip = self._strips.get(key)
        if strip is None:
            over = Style(color=cursor_style.color) if cursor_style is not None and cursor_style.color else None
            strip = self._line(self._row_cells(index), style, over=over)
            self._strips[key] = strip
        return strip.crop_extend(scroll_x, scroll_x + width, style)

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._strips.clear()

    # --- moving ----------------------------------------------------------------------
    @property
    def _page(self) -> int:
        return max(1, self.scrollable_content_region.height - 1)

    def watch_cursor_row(self, old: int, new: int) -> None:
        self._scroll_cursor_into_view()
        self.refresh()
        self.app.refresh_bindings()  # the footer offers what applies to the selected row

    def _scroll_cursor_into_view(self) -> None:
        row, page = self.cursor_row, self._page
        if row < self.scroll_y:
            self.scroll_to(y=row, animate=False, immediate=True)
        elif row >= self.scroll_y + page:
            self.scroll_to(y=row - page + 1, animate=False, immediate=True)

    def action_cursor(self, step: int) -> None:
        self.move_cursor(row=self.cursor_row + step)

    def action_page(self, step: int) -> None:
        self.move_cursor(row=self.cursor_row + step * self._page)

    def action_jump(self, where: int) -> None:
        self.move_cursor(row=0 if where == 0 else len(self.records) - 1)

    def action_choose(self) -> None:
        if self.selected_record is not None:
            self.post_message(self.RowChosen(self, self.selected_record))

    def column_at(self, x: int) -> int | None:
        """The column under screen column ``x`` of the widget (header clicks sort by it)."""
        x += int(self.scroll_x)
        start = 0
        for i, width in enumerate(self._widths):
            if width <= 0:
                continue
            if start <= x < start + width + GAP:
                return i
            start += width + GAP
        return None

    def on_click(self, event: events.Click) -> None:
        y = event.y  # relative to the widget
        if y < 1:
            column = self.column_at(event.x)
            if column is not None:
                self.sort_by(column)
            return
        index = int(self.scroll_y) + y - 1
        if 0 <= index < len(self.records):
            if index == self.cursor_row and event.chain >= 2:
                self.action_choose()
            self.move_cursor(row=index)

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()
