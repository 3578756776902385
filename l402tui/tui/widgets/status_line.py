"""The one-line bar at the top: where data comes from, what is open, the last event."""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget


class StatusLine(Widget):
    DEFAULT_CSS = """
    StatusLine { height: 1; background: $panel; color: $foreground; padding: 0 1; }
    """

    def __init__(self, *, id: str | None = None):
        super().__init__(id=id)
        self.source = "connecting…"
        self.summary = ""
        self.last_event = ""
        self.problem = ""
        self.busy = ""
        self.hint = ""  # e.g. how to attach when this view is read-only

    def set(self, **fields: str) -> None:
        for key, value in fields.items():
            setattr(self, key, value)
        self.refresh()

    def render(self) -> Text:
        text = Text()
        # Most useful first: the line is cut at the right edge on narrow terminals.
        text.append("⚡ l402tui", style="bold")
        if self.busy:
            text.append(f"  {self.busy}", style="bold yellow")
        if self.problem:
            text.append(f"  {self.problem}", style="bold red")
        if self.summary:
            text.append(f"  {self.summary}")
        if self.hint:
            text.append(f"  {self.hint}", style="yellow")
        if self.last_event and not self.problem:
            text.append(f"  │ {self.last_event}", style="dim")
        text.append(f"  │ {self.source}", style="dim")
        text.truncate(max(self.size.width - 2, 10), overflow="ellipsis")
        return text
