"""Opening the coordinator source, filling the tables, and following its events (the
loading half of L402App).  Reads run in async workers and report back with messages;
a burst of events marks panes dirty and one short timer reloads them."""

from __future__ import annotations

import asyncio
import functools
from typing import Awaitable, Callable

from textual import work
from textual.widgets import TabbedContent

from l402tui.tui import format as fmt
from l402tui.tui.messages import (BountiesLoaded, CoordinatorEvent, EvaluationsLoaded, LedgerLoaded,
                                  SourceFailed, SourceReady, SubmissionsLoaded)
from l402tui.tui.source import SourceError
from l402tui.tui.widgets.eval_log_pane import EvalLogPane
from l402tui.tui.widgets.status_line import StatusLine
from l402tui.tui.widgets.table_pane import TablePane
from l402tui.tui.widgets.telemetry_pane import TelemetryPane

TABS = ("bounties", "submissions", "ledger")


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


class SourceLoading:
    _dirty: set[str]
    _reload_timer = None

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
            telemetry = self.main_screen.query_one(TelemetryPane)
            telemetry.host_name = f"this machine: {self.host_name}"
            telemetry.refresh()  # now, not at the next reading (a second later, or never when paused)
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
        self.main_screen.query_one(f"TabPane#{tab}", TablePane).fill(rows)

    @while_shown
    def on_bounties_loaded(self, message: BountiesLoaded) -> None:
        self._fill("bounties", message.rows)
        rows = message.rows
        open_ = sum(1 for b in rows if b.status == "OPEN")
        pool = sum(b.pool_left_msat for b in rows if b.status == "OPEN")
        self.main_screen.query_one(StatusLine).set(
            summary=f"{len(rows)} {'bounty' if len(rows) == 1 else 'bounties'} · {open_} open · "
                    f"{fmt.sats(pool)} sat in open pools")

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
