"""The one-line filter box above a table (`/` opens it; Enter keeps, Esc clears)."""

from __future__ import annotations

from textual.binding import Binding
from textual.message import Message
from textual.widgets import Input


class TableFilter(Input):
    BINDINGS = [Binding("escape", "clear_filter", "Clear filter", show=False, id="filter_clear")]

    class Closed(Message):
        def __init__(self, box: "TableFilter", cleared: bool):
            super().__init__()
            self.box = box
            self.cleared = cleared

    def action_clear_filter(self) -> None:
        self.value = ""
        self.post_message(self.Closed(self, cleared=True))
