"""The demo's narration on screen (`l402tui demo`): the newest lines, each stamped with
the seconds since the story began, wrapped so the newest is always whole; older lines
fade.  Hidden until the first line comes, so it costs nothing outside the demo."""

from __future__ import annotations

from collections import deque

from rich.console import RenderableType
from rich.text import Text
from textual.widget import Widget

KEEP = 200  # lines kept; the full story is in demo.log
STAMP = 8  # "  48.6s "


class StoryPane(Widget):
    DEFAULT_CSS = """
    StoryPane { height: 7; border-top: solid $panel; border-title-color: $text-accent;
                border-title-style: bold; padding: 0 1; display: none; }
    StoryPane.-told { display: block; }
    """

    def __init__(self, *, id: str | None = None):
        super().__init__(id=id)
        self.lines: deque[tuple[float, str]] = deque(maxlen=KEEP)
        self.ended = False

    def on_mount(self) -> None:
        self.border_title = "Story"

    def tell(self, at_s: float, line: str) -> None:
        self.lines.append((at_s, line))
        self.add_class("-told")
        self.refresh()

    def end(self) -> None:
        self.ended = True
        self.border_title = "Story · complete (d: summary)"
        self.refresh()

    def render(self) -> RenderableType:
        width = max(self.content_region.width, 20)
        height = max(self.content_region.height, 1)
        shown: list[Text] = []
        newest = True
        for at_s, line in reversed(self.lines):  # newest first, until the pane is full
            wrapped = self._wrapped(at_s, line, width, newest)
            if len(shown) + len(wrapped) > height:
                if newest:  # keep the newest whole where it can be; its tail if it cannot
                    shown = wrapped[-height:]
                break
            shown = wrapped + shown
            newest = False
        return Text("\n").join(shown) if shown else Text("")

    def _wrapped(self, at_s: float, line: str, width: int, newest: bool) -> list[Text]:
        """The line under its time stamp, wrapped with a hanging indent."""
        body = Text(line, style="bold" if newest else "dim")
        rows = list(body.wrap(self.app.console, width - STAMP, overflow="fold"))
        out = []
        for i, row in enumerate(rows):
            stamp = Text(f"{at_s:6.1f}s " if i == 0 else " " * STAMP, style="dim")
            out.append(stamp + row)
        return out
