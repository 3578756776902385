"""The l402tui Textual app: panes over a CoordinatorSource, live from its event stream.

Nothing here blocks the event loop.  Reads run in async workers (the source is
async), NVML and psutil in a thread worker; every worker reports back with a
message, and only message handlers touch widgets.  Bursts of coordinator events
are coalesced: an event marks panes dirty and one short timer reloads them.
"""

from __future__ import annotations

import asyncio
import functools
import socket
import time
from pathlib import Path
from typing import Awaitable, Callable

from textual import on, work
from textual.app import App, ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Footer, Input, Static, TabbedContent, TabPane

from l402tui.telemetry.gpu import GpuSampler
from l402tui.telemetry.host import HostSampler
from l402tui.tui import format as fmt
from l402tui.tui.actions import APP_ACTIONS, make_bindings
from l402tui.tui.agent_events import AgentController
from l402tui.tui.commands import ActionsProvider
from l402tui.tui.messages import (AgentEventReceived, BountiesLoaded, CoordinatorEvent, EvalLogRead,
                                  EvaluationsLoaded, LedgerLoaded, SourceFailed, SourceReady,
                                  SubmissionsLoaded, TelemetrySampled)
from l402tui.tui.source import CoordinatorSource, EvaluationRow, SourceError
from l402tui.tui.app_actions import AppActions
from l402tui.tui.themes import DEFAULT_THEME, discover_themes
from l402tui.tui.widgets.agent_panel import AgentPanel
from l402tui.tui.widgets.bounties_table import BountiesTable
from l402tui.tui.widgets.eval_log_pane import EvalLogPane
from l402tui.tui.widgets.ledger_table import LedgerTable
from l402tui.tui.widgets.record_table import RecordTable
from l402tui.tui.widgets.status_line import StatusLine
from l402tui.tui.widgets.submissions_table import SubmissionsTable
from l402tui.tui.widgets.table_filter import TableFilter
from l402tui.tui.widgets.telemetry_pane import TelemetryPane

SourceFactory = Callable[[], Awaitable[CoordinatorSource]]
TABS = ("bounties", "submissions", "ledger")
NARROW_WIDTH = 100  # below this the GPU/host column hides unless asked for
FINISHED = ("DONE", "FAILED")


def while_shown(handler):
    """Workers can report after the screens are gone (quitting while panes load): drop
    those reports instead of failing on a screen that no longer exists."""
    @functools.wraps(handler)
    def guarded(self, message):
        if not self.is_running or not self.screen_stack:  # shutting down: the screens go first
            return None
        return handler(self, message)

    return guarded


def pane_for_event(kind: str) -> set[str]:
    """Which panes an event kind can change (its prefix before the first dot)."""
    head = kind.split(".", 1)[0]
    return {
        "bounty": {"bounties", "ledger"},
        "submission": {"submissions", "bounties"},
        "evaluation": {"evaluations", "submissions"},
        "invoice": {"ledger", "bounties"},
        "payment": {"ledger", "submissions", "bounties"},
        "payout": {"ledger", "submissions", "bounties"},
        "holdback": {"ledger", "submissions", "bounties"},
        "ledger": {"ledger", "bounties"},
        "stake": {"ledger", "submissions"},
    }.get(head, {"bounties", "submissions", "ledger", "evaluations"})


class L402App(AppActions, App):
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
                        with TabPane(tab.capitalize(), id=tab, classes="-is-empty"):
                            yield TableFilter(placeholder="filter: words in any column (enter: keep, esc: clear)",
                                              id=f"{tab}-filter", classes="table-filter", compact=True)
                            yield Static(id=f"{tab}-query", classes="query-line")
                            yield table(id=f"{tab}-table", clock=self.clock)
                            yield Static(table.EMPTY_TEXT, classes="empty")
                yield EvalLogPane(self.log_cap_bytes, clock=self.clock, id="eval-log")
            with VerticalScroll(id="side"):
                yield TelemetryPane(self.telemetry_interval_s, id="telemetry")
            yield AgentPanel(id="agent", clock=self.clock)
        yield Footer(compact=True)

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
        # At 80 columns the palette hint pushed the last key off the footer (a stray letter):
        # ctrl+p still works, and `?` lists it.
        self.main_screen.query_one(Footer).show_command_palette = not narrow

    # --- opening the source and loading ------------------------------------------------
    @work(exclusive=True, group="source", exit_on_error=False)
    async def _open_source(self) -> None:
        try:
            source = await self.source_factory()
        except Exception as exc:  # shown in the status line; the app stays usable
            self.post_message(SourceFailed("open", str(exc) or type(exc).__name__))
            return
        self.post_message(SourceReady(source))

    @while_shown
    def on_source_ready(self, message: SourceReady) -> None:
        self.source = message.source
        hint = "" if message.source.can_act else \
            "read-only: to act, run `l402tui` (coordinator in-process) or `l402tui --attach URL`"
        self.main_screen.query_one(StatusLine).set(source=message.source.description, problem="", hint=hint)
        self.refresh_bindings()  # the footer drops what this source cannot do
        if getattr(message.source, "attached", False):  # the daemon may run elsewhere: say whose readings
            self.main_screen.query_one(TelemetryPane).host_name = f"this machine: {self.host_name}"
        pane = self.main_screen.query_one(EvalLogPane)
        pane.logs_here = message.source.has_eval_logs
        pane.redraw_title()
        self.reload(set(TABS) | {"evaluations"})
        self._follow_events()
        if self.agent is None and self.agent_factory is not None:
            self.agent = self.agent_factory(message.source)
            if self.agent is not None:
                self._attach_agent()

    @while_shown
    def on_source_failed(self, message: SourceFailed) -> None:
        text = f"{message.what} failed: {message.error}"
        self.main_screen.query_one(StatusLine).set(problem=text)
        self.notify(text, severity="error", timeout=10)

    def reload(self, panes: set[str]) -> None:
        if self.source is None:
            return
        loaders = {"bounties": self._load_bounties, "submissions": self._load_submissions,
                   "ledger": self._load_ledger, "evaluations": self._load_evaluations}
        for pane in panes:
            loaders[pane]()

    async def _read(self, what: str, call: Callable[[], Awaitable]) -> object | None:
        try:
            return await call()
        except (SourceError, OSError, ValueError) as exc:
            self.post_message(SourceFailed(f"loading {what}", str(exc)))
        except Exception as exc:  # a broken source must not take the UI down with it
            self.post_message(SourceFailed(f"loading {what}", f"{type(exc).__name__}: {exc}"))
        return None

    @work(exclusive=True, group="load-bounties", exit_on_error=False)
    async def _load_bounties(self) -> None:
        rows = await self._read("bounties", self.source.list_bounties)
        if rows is not None:
            self.post_message(BountiesLoaded(rows))

    @work(exclusive=True, group="load-submissions", exit_on_error=False)
    async def _load_submissions(self) -> None:
        rows = await self._read("submissions", self.source.list_submissions)
        if rows is not None:
            self.post_message(SubmissionsLoaded(rows))

    @work(exclusive=True, group="load-ledger", exit_on_error=False)
    async def _load_ledger(self) -> None:
        rows = await self._read("ledger", self.source.ledger)
        if rows is not None:
            self.post_message(LedgerLoaded(rows))

    @work(exclusive=True, group="load-evaluations", exit_on_error=False)
    async def _load_evaluations(self) -> None:
        rows = await self._read("evaluations", self.source.evaluations)
        if rows is not None:
            self.post_message(EvaluationsLoaded(rows))

    def _fill(self, tab: str, rows: list) -> None:
        table = self.main_screen.query_one(f"#{tab}-table", RecordTable)
        table.set_records(rows)
        self.main_screen.query_one(f"TabPane#{tab}").set_class(not rows, "-is-empty")

    @while_shown
    def on_bounties_loaded(self, message: BountiesLoaded) -> None:
        self._fill("bounties", message.rows)
        rows = message.rows
        open_ = sum(1 for b in rows if b.status == "OPEN")
        pool = sum(b.pool_left_msat for b in rows if b.status == "OPEN")
        self.main_screen.query_one(StatusLine).set(
            summary=f"{len(rows)} bounties · {open_} open · {fmt.sats(pool)} sat in open pools")

    @while_shown
    def on_submissions_loaded(self, message: SubmissionsLoaded) -> None:
        self._fill("submissions", message.rows)
        flagged = sum(1 for s in message.rows if s.status == "FLAGGED")
        tabs = self.main_screen.query_one(TabbedContent)
        label = f"Submissions ({len(message.rows)})" + (f" ⚑{flagged}" if flagged else "")
        tabs.get_tab("submissions").label = label

    @while_shown
    def on_ledger_loaded(self, message: LedgerLoaded) -> None:
        self._fill("ledger", message.rows)

    # --- filtering the tables --------------------------------------------------------------
    @on(RecordTable.FilterRequested)
    def _open_filter(self, event: RecordTable.FilterRequested) -> None:
        pane = event.table.parent
        box = pane.query_one(TableFilter)
        pane.add_class("-filtering")
        box.value = event.table.filter_text
        box.focus()

    @on(Input.Changed, ".table-filter")
    def _filter_typed(self, event: Input.Changed) -> None:
        event.control.parent.query_one(RecordTable).set_filter(event.value)

    @on(Input.Submitted, ".table-filter")
    def _filter_kept(self, event: Input.Submitted) -> None:
        pane = event.control.parent
        pane.remove_class("-filtering")
        pane.query_one(RecordTable).focus()

    @on(TableFilter.Closed)
    def _filter_closed(self, event: TableFilter.Closed) -> None:
        pane = event.box.parent
        pane.remove_class("-filtering")
        table = pane.query_one(RecordTable)
        table.set_filter("")
        table.focus()

    @on(RecordTable.QueryChanged)
    def _query_changed(self, event: RecordTable.QueryChanged) -> None:
        pane = event.table.parent
        summary = event.table.query_summary()
        pane.query_one(".query-line", Static).update(
            summary + ("  (/ filter · F status · o sort · esc in the box clears)" if summary else ""))
        pane.set_class(bool(summary), "-queried")

    # --- live events ---------------------------------------------------------------------
    @work(exclusive=True, group="events", exit_on_error=False)
    async def _follow_events(self) -> None:
        source = self.source
        while source is self.source:
            try:
                async for event in source.events():
                    self.post_message(CoordinatorEvent(event))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.post_message(SourceFailed("event stream", f"{exc}; reconnecting in 5 s"))
                await asyncio.sleep(5)
                self.post_message(SourceReady(source))  # reload everything missed, then resubscribe
                return

    @while_shown
    def on_coordinator_event(self, message: CoordinatorEvent) -> None:
        e = message.event
        self.main_screen.query_one(StatusLine).set(
            last_event=f"{fmt.clock(e.created_at)} {fmt.event_sentence(e.kind, e.subject_id, e.payload)}", problem="")
        self._dirty |= pane_for_event(e.kind)
        if self._reload_timer is None:
            self._reload_timer = self.set_timer(self.reload_delay_s, self._flush_reload)

    def _flush_reload(self) -> None:
        self._reload_timer = None
        dirty, self._dirty = self._dirty, set()
        self.reload(dirty)

    # --- the eval log --------------------------------------------------------------------
    @while_shown
    def on_evaluations_loaded(self, message: EvaluationsLoaded) -> None:
        self.evaluations = message.rows
        running = next((e for e in message.rows if e.status == "RUNNING"), None)
        if running is not None:
            self.pinned_evaluation = None  # a running evaluation takes over the pane
        chosen = next((e for e in message.rows if e.id == self.pinned_evaluation), None) \
            or running or (message.rows[0] if message.rows else None)
        self._show_evaluation(chosen)

    def _show_evaluation(self, evaluation: EvaluationRow | None) -> None:
        pane = self.main_screen.query_one(EvalLogPane)
        previous = pane.evaluation
        pane.show_evaluation(evaluation)
        if evaluation is None:
            return
        switched = previous is None or previous.id != evaluation.id
        if switched:
            self._log_offset = 0  # the pane was cleared: read this log from its start
        follower = self._log_follower
        if switched or follower is None or follower.is_finished:
            self._log_follower = self._follow_log(evaluation.id)

    _log_offset = 0
    _log_follower = None

    @work(exclusive=True, group="eval-log", exit_on_error=False)
    async def _follow_log(self, evaluation_id: int) -> None:
        while True:
            offset = self._log_offset
            result = await self._read(f"eval log #{evaluation_id}",
                                      lambda: self.source.eval_log(evaluation_id, offset))
            current = self.main_screen.query_one(EvalLogPane).evaluation
            if result is None or current is None or current.id != evaluation_id:
                return
            lines, self._log_offset = result  # kept here, so a restarted follower never rereads
            if lines:
                self.post_message(EvalLogRead(evaluation_id, lines, self._log_offset))
            elif current.status in FINISHED:
                return  # drained a finished log: nothing more will come
            else:
                await asyncio.sleep(self.log_poll_s)

    @while_shown
    def on_eval_log_read(self, message: EvalLogRead) -> None:
        pane = self.main_screen.query_one(EvalLogPane)
        if pane.evaluation is not None and pane.evaluation.id == message.evaluation_id:
            pane.append(message.lines)

    @on(RecordTable.RowChosen, "#submissions-table")
    def _submission_chosen(self, event: RecordTable.RowChosen) -> None:
        from l402tui.tui.screens.submission_detail import SubmissionDetailScreen

        record = event.record
        evaluation = next((e for e in self.evaluations if e.submission_id == record.id), None)
        if evaluation is not None:  # the main pane shows it too once the detail is closed
            self.pinned_evaluation = evaluation.id
            self._show_evaluation(evaluation)
        if self.source is None:
            return
        ledger = self.main_screen.query_one("#ledger-table", RecordTable).all_records
        self.push_screen(SubmissionDetailScreen(self.source, record, self.evaluations, ledger,
                                                log_cap_bytes=self.log_cap_bytes, clock=self.clock,
                                                log_poll_s=self.log_poll_s))

    @on(RecordTable.RowChosen, "#bounties-table")
    def _bounty_chosen(self, event: RecordTable.RowChosen) -> None:
        from l402tui.tui.screens.bounty_detail import BountyDetailScreen

        screen = self.main_screen
        self.push_screen(BountyDetailScreen(
            event.record, screen.query_one("#submissions-table", RecordTable).all_records,
            screen.query_one("#ledger-table", RecordTable).all_records, now=self.clock()))

    # --- telemetry -----------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="telemetry", exit_on_error=False)
    def _sample_telemetry(self) -> None:
        if not self.is_running or not self.screen_stack:
            return  # quitting
        if not self.main_screen.query_one("#side").display:
            return  # hidden: do not spend a core-second an hour drawing what nobody sees
        self.post_message(TelemetrySampled(self.gpu_sampler.read(), self.host_sampler.read()))

    @while_shown
    def on_telemetry_sampled(self, message: TelemetrySampled) -> None:
        self.main_screen.query_one(TelemetryPane).update_readings(message.gpu, message.host)

    # --- the agent -----------------------------------------------------------------------
    def _attach_agent(self) -> None:
        self.main_screen.query_one(AgentPanel).attach(self.agent.description, self.agent.minimize)
        self._follow_agent()

    @work(exclusive=True, group="agent-events", exit_on_error=False)
    async def _follow_agent(self) -> None:
        try:
            async for event in self.agent.events():
                self.post_message(AgentEventReceived(event))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.post_message(SourceFailed("agent event stream", str(exc)))

    @while_shown
    def on_agent_event_received(self, message: AgentEventReceived) -> None:
        self.main_screen.query_one(AgentPanel).apply(message.event)

    async def on_unmount(self) -> None:
        self.gpu_sampler.close()
        close_agent = getattr(self.agent, "close", None)
        if close_agent is not None:
            await close_agent()
        if self.source is not None:
            await self.source.close()
