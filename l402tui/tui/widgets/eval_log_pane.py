"""The eval-log pane: which evaluation is shown, its log (LogView) and a search box."""

from __future__ import annotations

import time
from typing import Callable

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Input, Static

from l402tui.tui import format as fmt
from l402tui.tui.source import EvaluationRow
from l402tui.tui.widgets.log_view import LogView
from l402tui.tui.widgets.record_table import status_text


class EvalLogPane(Vertical):
    DEFAULT_CSS = """
    EvalLogPane #log-title { height: 1; padding: 0 1; background: $panel; }
    EvalLogPane #log-search { display: none; height: 1; border: none; padding: 0 1; }
    EvalLogPane.-searching #log-search { display: block; }
    """
    BINDINGS = [Binding("escape", "close_search", "Close search", show=False, id="log_close_search")]

    SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"

    def __init__(self, max_bytes: int, *, clock: Callable[[], float] = time.time, id: str | None = None,
                 classes: str | None = None):
        super().__init__(id=id, classes=classes)
        self.max_bytes = max_bytes
        self.clock = clock
        self.evaluation: EvaluationRow | None = None
        self.logs_here = True  # False when attached: the logs stay on the coordinator's machine
        self.phase = ""  # "tests" or "repeat", from the section headers seen in the log
        self.repeat = 0  # 1-based number of the repeat whose lines are arriving
        self._ticker = None

    def compose(self) -> ComposeResult:
        yield Static(id="log-title")
        yield LogView(max_bytes=self.max_bytes, id="log-view")
        yield Input(placeholder="search the log (enter: find, esc: close)", id="log-search", compact=True)

    def on_mount(self) -> None:
        self.show_evaluation(None)
        self.watch(self.view, "follow", lambda _: self.redraw_title(), init=False)

    @property
    def view(self) -> LogView:
        return self.query_one(LogView)

    def show_evaluation(self, evaluation: EvaluationRow | None) -> None:
        """Switch to another evaluation's log (clears the view); same one: keep the lines."""
        if evaluation is None or self.evaluation is None or evaluation.id != self.evaluation.id:
            self.view.clear()
            self.phase, self.repeat = "", 0
        self.evaluation = evaluation
        running = evaluation is not None and evaluation.status == "RUNNING"
        # The elapsed time and spinner move twice a second while a run goes, and cost nothing after.
        if running and self._ticker is None:
            self._ticker = self.set_interval(0.5, self.redraw_title)
        elif not running and self._ticker is not None:
            self._ticker.stop()
            self._ticker = None
        self.redraw_title()

    def progress(self) -> Text:
        """"⠹ repeat 2/3 · 8 s" while running; the phase and total time once finished."""
        e = self.evaluation
        text = Text()
        if e is None:
            return text
        running = e.status == "RUNNING"
        elapsed = None
        if e.started_at is not None:
            end = self.clock() if running or e.finished_at is None else e.finished_at
            elapsed = max(0.0, end - e.started_at)
        if running:
            frame = self.SPINNER[int((elapsed or 0) * 2) % len(self.SPINNER)]
            text.append(f"{frame} ", style="bold yellow")
        if self.phase == "tests":
            text.append("required tests")
        elif self.repeat:
            total = f"/{e.repeats}" if e.repeats else ""
            text.append(f"repeat {self.repeat}{total}")
        elif running:
            text.append("starting")
        if elapsed is not None:
            text.append(f"{' · ' if text.plain.strip() else ''}{fmt.span(elapsed)}")
        return text

    def redraw_title(self) -> None:
        title = Text("Eval log", style="bold")
        e = self.evaluation
        if not self.logs_here:
            title.append("  evaluation logs stay on the coordinator's machine (they may hold held-out data);"
                         " run the TUI there to follow them", style="dim")
        elif e is None:
            title.append("  no evaluation yet: logs appear here while a submission is evaluated", style="dim")
        else:
            title.append(f"  #{e.id} {e.kind}")
            if e.submission_id:
                title.append(f" {e.submission_id}")
            title.append(" · ")
            title.append_text(status_text(e.status))
            progress = self.progress()
            if progress.plain:
                title.append(" · ")
                title.append_text(progress)
            if e.sandbox:
                sandbox_style = "bold red" if e.sandbox == "local" else "dim"
                title.append(f" · sandbox {e.sandbox}", style=sandbox_style)
        view = self.view
        if view.dropped:
            title.append(f" · {view.dropped:,} early lines dropped (cap)", style="dim")
        if view.search_term:
            title.append(f" · /{view.search_term} ({view.match_count()} lines)", style="dim")
        if not view.follow and view.lines:
            title.append(" · paused (End to follow)", style="yellow")
        self.query_one("#log-title", Static).update(title)

    def append(self, lines: list[str]) -> None:
        shown = []
        for line in lines:
            if line.startswith("── required tests"):
                self.phase = "tests"
            elif line.startswith("── repeat "):
                number, _, rest = line.removeprefix("── repeat ").partition(" ")
                if number.isdigit():  # the reader counts repeats from 0, people from 1
                    self.phase, self.repeat = "repeat", int(number) + 1
                    line = f"── repeat {self.repeat} {rest}"
            shown.append(line)
        self.view.append_lines(shown)
        self.redraw_title()

    def open_search(self) -> None:
        self.add_class("-searching")
        box = self.query_one("#log-search", Input)
        box.value = self.view.search_term
        box.focus()

    def action_close_search(self) -> None:
        self.remove_class("-searching")
        self.view.focus()

    @on(Input.Submitted, "#log-search")
    def _search(self, event: Input.Submitted) -> None:
        event.stop()
        found = self.view.search(event.value.strip())
        self.remove_class("-searching")
        self.view.focus()
        self.redraw_title()
        if event.value.strip() and found is None:
            self.notify(f"no line contains {event.value.strip()!r}", severity="warning")
