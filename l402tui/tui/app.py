"""The l402tui Textual app: panes over a CoordinatorSource, live from its event stream.

Nothing here blocks the event loop.  Reads run in async workers (the source is
async), NVML and psutil in a thread worker; every worker reports back with a
message, and only message handlers touch widgets.  Bursts of coordinator events
are coalesced: an event marks panes dirty and one short timer reloads them.

This module is the frame (construction, layout, resizing); the rest is by topic:
app_loading (source, tables, events), app_eval_log (log pane, detail screens),
app_live (telemetry, agent stream), app_story (the demo's narration),
app_actions (what the keys do).
"""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Awaitable, Callable

from textual.app import App, ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import TabbedContent

from l402tui.telemetry.gpu import GpuSampler
from l402tui.telemetry.host import HostSampler
from l402tui.tui.actions import APP_ACTIONS, make_bindings
from l402tui.tui.agent_events import AgentController
from l402tui.tui.app_actions import AppActions
from l402tui.tui.app_eval_log import EvalLogFollowing
from l402tui.tui.app_live import LivePanels
from l402tui.tui.app_loading import SourceLoading
from l402tui.tui.app_story import DemoStory
from l402tui.tui.commands import ActionsProvider
from l402tui.tui.source import CoordinatorSource, EvaluationRow
from l402tui.tui.themes import DEFAULT_THEME, discover_themes
from l402tui.tui.widgets.agent_panel import AgentPanel
from l402tui.tui.widgets.bounties_table import BountiesTable
from l402tui.tui.widgets.eval_log_pane import EvalLogPane
from l402tui.tui.widgets.fitting_footer import FittingFooter
from l402tui.tui.widgets.ledger_table import LedgerTable
from l402tui.tui.widgets.status_line import StatusLine
from l402tui.tui.widgets.story_pane import StoryPane
from l402tui.tui.widgets.submissions_table import SubmissionsTable
from l402tui.tui.widgets.table_pane import TablePane
from l402tui.tui.widgets.telemetry_pane import TelemetryPane

SourceFactory = Callable[[], Awaitable[CoordinatorSource]]
NARROW_WIDTH = 100  # below this the GPU/host column hides unless asked for


class L402App(SourceLoading, EvalLogFollowing, LivePanels, DemoStory, AppActions, App):
    CSS_PATH = "app.tcss"
    TITLE = "l402tui"
    BINDINGS = make_bindings(APP_ACTIONS)
    COMMANDS = App.COMMANDS | {ActionsProvider}

    def __init__(self, source_factory: SourceFactory, *, theme: str = DEFAULT_THEME,
                 keymap: dict[str, str] | None = None, user_theme_dir: Path | None = None,
                 export_dir: Path | None = None, log_cap_bytes: int = 1024 * 1024,
                 agent: AgentController | None = None,
                 agent_factory: Callable[[CoordinatorSource], AgentController | None] | None = None,
                 gpu: GpuSampler | None = None,
                 host: HostSampler | None = None, clock: Callable[[], float] = time.time,
                 telemetry_interval_s: float = 1.0, log_poll_s: float = 0.5, reload_delay_s: float = 0.2,
                 animation: bool = False):
        super().__init__()
        self.source_factory = source_factory
        self.source: CoordinatorSource | None = None
        self.keymap = dict(keymap or {})
        self.export_dir = export_dir or Path.cwd()
        self.log_cap_bytes = log_cap_bytes
        self.agent = agent
        self.agent_factory = agent_factory  # builds the panel's agent once the source (and its URL) is known
        self.gpu_sampler = gpu or GpuSampler()
        self.host_sampler = host or HostSampler()
        # The telemetry pane names the machine it samples (attached, that is not the daemon's).
        self.host_name = getattr(self.host_sampler, "hostname", None) or socket.gethostname()
        self.clock = clock
        self.telemetry_interval_s = telemetry_interval_s
        self.log_poll_s = log_poll_s
        self.reload_delay_s = reload_delay_s
        self.evaluations: list[EvaluationRow] = []
        self.pinned_evaluation: int | None = None
        self._dirty: set[str] = set()
        self._reload_timer = None
        self._startup_notes: list[str] = []
        if not animation:
            self.animation_level = "none"
        themes, errors = discover_themes(user_theme_dir)
        self._startup_notes.extend(errors)
        self.theme_names = [t.name for t in themes]
        for t in themes:
            self.register_theme(t.to_textual())
        if theme in self.available_themes:
            self.theme = theme
        else:
            fallback = DEFAULT_THEME if DEFAULT_THEME in self.available_themes else "textual-dark"
            self._startup_notes.append(f"unknown theme {theme!r} (tui.theme); using {fallback}. "
                                       f"Themes: {', '.join(self.theme_names)}")
            self.theme = fallback

    @property
    def main_screen(self):
        """The screen with the panes (modal screens stack above it)."""
        return self.screen_stack[0] if self.screen_stack else self.screen

    # --- layout ------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield StatusLine(id="status")
        with Horizontal(id="body"):
            with Vertical(id="main"):
                with TabbedContent(id="tabs", initial="bounties"):
                    for tab, table in (("bounties", BountiesTable), ("submissions", SubmissionsTable),
                                       ("ledger", LedgerTable)):
                        yield TablePane(tab, table, clock=self.clock)
                yield StoryPane(id="story")
                yield EvalLogPane(self.log_cap_bytes, clock=self.clock, id="eval-log")
            with VerticalScroll(id="side"):
                yield TelemetryPane(self.telemetry_interval_s, id="telemetry")
            yield AgentPanel(id="agent", clock=self.clock)
        yield FittingFooter(compact=True)

    def on_mount(self) -> None:
        if self.keymap:
            self.set_keymap(self.keymap)
        self.main_screen.query_one("#side").border_title = "GPU / host"
        self.main_screen.query_one(TelemetryPane).host_name = self.host_name
        for note in self._startup_notes:
            self.notify(note, severity="warning", timeout=10)
        if self.agent is not None:
            self._attach_agent()
        self.main_screen.query_one("#bounties-table").focus()

    def on_ready(self) -> None:
        # Textual's Ready: the first frame is on screen.  Only now open the source and
        # sample telemetry: their imports run in threads that competed with the first
        # frame for the GIL (it came ~0.3 s later on 2 cores when started at mount).
        self._open_source()
        self._sample_telemetry()
        self.set_interval(self.telemetry_interval_s, self._sample_telemetry)

    def on_descendant_focus(self, event) -> None:
        # A blinking cursor is animation too: steady unless tui.animation is on.
        if self.animation_level == "none" and hasattr(event.widget, "cursor_blink"):
            event.widget.cursor_blink = False

    def on_resize(self) -> None:
        narrow = self.size.width < NARROW_WIDTH
        self.main_screen.set_class(narrow, "narrow")
        # At 80 columns the palette hint takes room the keys need: ctrl+p still works, and `?` lists it.
        self.main_screen.query_one(FittingFooter).show_command_palette = not narrow

    async def on_unmount(self) -> None:
        self.gpu_sampler.close()
        close_agent = getattr(self.agent, "close", None)
        if close_agent is not None:
            await close_agent()
        if self.source is not None:
            await self.source.close()
