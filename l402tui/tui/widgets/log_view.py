"""A virtualised, size-capped, searchable log view (the eval-log pane's body).

Built on ScrollView and the line API, like Toolong: only visible lines are
rendered, each rendered line is cached as a Strip, so a long log costs memory for
its text and nothing per frame.  New lines arrive in batches; while the view is
scrolled to the end it follows them, and scrolling up stops following.
"""

from __future__ import annotations

from rich.cells import cell_len
from rich.style import Style
from rich.text import Text
from textual.cache import LRUCache
from textual.geometry import Size
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from l402tui.tui.actions import WIDGET_ACTIONS, make_bindings

MATCH_STYLE = Style(reverse=True)
CURRENT_MATCH_STYLE = Style(reverse=True, bold=True, underline=True)


class LogView(ScrollView, can_focus=True):
    BINDINGS = make_bindings(WIDGET_ACTIONS)

    DEFAULT_CSS = """
    LogView { background: $surface; }
    LogView:focus { background-tint: $foreground 3%; }
    """

    follow: reactive[bool] = reactive(True, init=False)
    search_term: reactive[str] = reactive("", init=False)

    def __init__(self, max_lines: int = 50_000, max_bytes: int = 4 * 1024 * 1024, *,
                 name: str | None = None, id: str | None = None, classes: str | None = None):
        super().__init__(name=name, id=id, classes=classes)
        self.max_lines = max_lines
        self.max_bytes = max_bytes
        self.lines: list[str] = []
        self.dropped = 0  # lines removed from the front to respect the caps
        self._bytes = 0
        self._widest = 0
        self._first_no = 0  # absolute number of lines[0]; cache keys survive trimming
        self._cache: LRUCache[tuple[int, str, bool, Style], Strip] = LRUCache(2048)
        self.match_line: int | None = None  # index into self.lines of the current match

    # --- content ---------------------------------------------------------------------
    def clear(self) -> None:
        self.lines.clear()
        self.dropped = 0
        self._bytes = 0
        self._widest = 0
        self._first_no = 0
        self._cache.clear()
        self.match_line = None
        self.follow = True
        self._update_size()

    def append_lines(self, new: list[str]) -> None:
        """Add a batch of lines; one refresh for the whole batch."""
        if not new:
            return
        at_end = self.follow or self.scroll_y >= self.max_scroll_y
        for line in new:
            line = line.expandtabs(4).replace("\r", "")
            self.lines.append(line)
            self._bytes += len(line) + 1
            width = cell_len(line)
            if width > self._widest:
                self._widest = width
        self._trim()
        self._update_size()
        if at_end:
            self.follow = True
            # After the next refresh: max_scroll_y is only known once the new size is laid out.
            self.call_after_refresh(self._scroll_to_end)
        self.refresh()

    def _scroll_to_end(self, tries: int = 0) -> None:
        if not self.follow:
            return
        self.scroll_to(y=self.max_scroll_y, animate=False, immediate=True)
        # The new size is only known to the scroll maths once laid out; if that has not
        # happened yet, look again shortly (a few times at most) rather than stop short.
        expected = max(0, len(self.lines) - self.scrollable_content_region.height)
        if self.scroll_y < expected and tries < 20:
            self.set_timer(0.05, lambda: self._scroll_to_end(tries + 1))

    def on_resize(self) -> None:
        if self.follow and self.lines:
            self.call_after_refresh(self._scroll_to_end)

    def _trim(self) -> None:
        excess = len(self.lines) - self.max_lines
        drop = max(excess, 0)
        if self._bytes > self.max_bytes:
            # Drop from the front until under the byte cap, plus 10 % slack so trimming
            # happens in chunks rather than on every line.
            target = int(self.max_bytes * 0.9)
            size = self._bytes
            while drop < len(self.lines) and size > target:
                size -= len(self.lines[drop]) + 1
                drop += 1
        if drop:
            self._bytes -= sum(len(x) + 1 for x in self.lines[:drop])
            del self.lines[:drop]
            self.dropped += drop
            self._first_no += drop
            if self.match_line is not None:
                self.match_line = self.match_line - drop if self.match_line >= drop else None

    def _update_size(self) -> None:
        self.virtual_size = Size(self._widest, len(self.lines))

    # --- rendering -------------------------------------------------------------------
    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        index = scroll_y + y
        width = self.scrollable_content_region.width
        style = self.rich_style
        if index >= len(self.lines):
            return Strip.blank(width, style)
        strip = self._line_strip(index, style)
        return strip.crop_extend(scroll_x, scroll_x + width, style)

    def _line_strip(self, index: int, style: Style) -> Strip:
        current = index == self.match_line
        key = (self._first_no + index, self.search_term, current, style)  # style: themes can change
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        line = self.lines[index]
        text = Text(line, no_wrap=True)
        text.stylize(style)
        term = self.search_term
        if term:
            lower, needle = line.lower(), term.lower()
            start = lower.find(needle)
            while start != -1:
                text.stylize(CURRENT_MATCH_STYLE if current else MATCH_STYLE, start, start + len(needle))
                start = lower.find(needle, start + len(needle))
        strip = Strip(text.render(self.app.console), cell_len(line))
        self._cache[key] = strip
        return strip

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._cache.clear()

    # --- following and searching -----------------------------------------------------
    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if new_value < old_value and new_value < self.max_scroll_y:
            self.follow = False  # the reader scrolled up: stop dragging them back down

    def action_follow(self) -> None:
        self.follow = True
        self._scroll_to_end()

    def watch_search_term(self) -> None:
        self.match_line = None
        self.refresh()

    def search(self, term: str, forward: bool = True) -> int | None:
        """Set the search term and move to the next match from the top of the view.

        Returns the matched line's index, or None when nothing matches."""
        self.search_term = term
        if not term:
            return None
        start = int(self.scroll_y) - (1 if forward else -1)
        return self._jump(start, forward)

    def action_next_match(self) -> None:
        if self.search_term:
            self._jump(self.match_line if self.match_line is not None else int(self.scroll_y) - 1, True)

    def action_previous_match(self) -> None:
        if self.search_term:
            self._jump(self.match_line if self.match_line is not None else int(self.scroll_y), False)

    def match_count(self) -> int:
        needle = self.search_term.lower()
        return sum(1 for line in self.lines if needle in line.lower()) if needle else 0

    def _jump(self, start: int, forward: bool) -> int | None:
        needle = self.search_term.lower()
        n = len(self.lines)
        if not n:
            return None
        step = 1 if forward else -1
        for k in range(1, n + 1):  # wraps around once
            index = (start + step * k) % n
            if needle in self.lines[index].lower():
                self.match_line = index
                self.follow = False
                self.scroll_to(y=max(0, index - self.scrollable_content_region.height // 2),
                               animate=False, immediate=True)
                self.refresh()
                return index
        self.match_line = None
        self.refresh()
        return None
