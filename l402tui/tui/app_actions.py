"""What the app's keys and palette entries do (the ``action_*`` methods of L402App).

Sponsor actions ask first where money or a bounty's fate is at stake, run in
workers, and report back as notifications; a failure says what went wrong and
leaves everything as it was.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual import work

from l402tui.tui import format as fmt
from l402tui.tui.export import export_csv
from l402tui.tui.source import FundingRequest, SourceError

if TYPE_CHECKING:
    from l402tui.tui.widgets.record_table import RecordTable


WRITING_ACTIONS = frozenset({"create_bounty", "fund_bounty", "review_submission", "close_bounty"})


class AppActions:
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Offer only what applies: nothing that writes on a read-only source, review only
        on a FLAGGED submission, fund only while a bounty awaits funding (False hides the key)."""
        if action == "show_summary":  # only once the demo's story is complete
            return getattr(self, "story_summary", None) is not None
        if action not in WRITING_ACTIONS:
            return True
        source = getattr(self, "source", None)
        if source is not None and not source.can_act:
            return False
        if not self.screen_stack or self.screen is not self.main_screen:
            return True
        try:
            if action == "review_submission":
                sub = self._selected("submissions")
                return sub is not None and sub.status == "FLAGGED" and self._tab() == "submissions"
            if action == "fund_bounty":
                bounty = self._selected("bounties")
                return bounty is not None and bounty.status == "AWAITING_FUNDING" and self._tab() == "bounties"
            if action == "close_bounty":
                bounty = self._selected("bounties")
                return bounty is not None and bounty.status not in ("CLOSED", "CANCELED")
        except Exception:  # before the panes exist
            return True
        return True

    def _tab(self) -> str:
        from textual.widgets import TabbedContent

        return self.main_screen.query_one(TabbedContent).active

    # --- navigation ----------------------------------------------------------------------
    def action_show_tab(self, tab: str) -> None:
        from textual.widgets import TabbedContent

        self.main_screen.query_one(TabbedContent).active = tab
        self.main_screen.query_one(f"#{tab}-table").focus()

    def action_focus_log(self) -> None:
        self.main_screen.query_one("#log-view").focus()

    def action_search_log(self) -> None:
        self.main_screen.query_one("#eval-log").open_search()

    def action_toggle_agent(self) -> None:
        screen = self.main_screen
        screen.toggle_class("-agent-on")
        if screen.has_class("-agent-on"):
            self.main_screen.query_one("#agent").focus()

    def action_toggle_telemetry(self) -> None:
        screen = self.main_screen
        shown = bool(self.main_screen.query_one("#side").display)
        screen.remove_class("-telemetry-on", "-telemetry-off")
        screen.add_class("-telemetry-off" if shown else "-telemetry-on")
        if not shown:
            self._sample_telemetry()

    def action_show_keys(self) -> None:
        from l402tui.tui.screens.keys import KeysScreen  # screens load when first opened: faster start

        self.push_screen(KeysScreen())

    def action_refresh(self) -> None:
        self.reload({"bounties", "submissions", "ledger", "evaluations"})

    def action_cycle_theme(self) -> None:
        names = self.theme_names or [self.theme]
        index = names.index(self.theme) + 1 if self.theme in names else 0
        self.theme = names[index % len(names)]
        self.notify(f"theme {self.theme}", timeout=2)

    # --- the selected row ----------------------------------------------------------------
    def _active_table(self) -> "RecordTable":
        from textual.widgets import TabbedContent

        return self.main_screen.query_one(f"#{self.main_screen.query_one(TabbedContent).active}-table")

    def _selected(self, tab: str):
        return self.main_screen.query_one(f"#{tab}-table").selected_record

    def action_copy_selected(self) -> None:
        table = self._active_table()
        record = table.selected_record
        if record is None:
            self.notify("nothing selected to copy", severity="warning")
            return
        text = table.copy_text(record)
        self.copy_to_clipboard(text)  # OSC 52: works over SSH; in tmux set `set-clipboard on`
        self.notify(f"copied {fmt.short_id(text, 40)}", timeout=3)

    def action_export_csv(self) -> None:
        table = self._active_table()
        header, rows = table.export_rows()
        if not rows:
            self.notify(f"the {table.EXPORT_NAME} table is empty: nothing to export", severity="warning")
            return
        self._write_csv(table.EXPORT_NAME, header, rows)

    @work(thread=True, exclusive=True, group="export", exit_on_error=False)
    def _write_csv(self, name: str, header: list[str], rows: list[list]) -> None:
        try:
            path = export_csv(self.export_dir, name, header, rows, self.clock())
        except OSError as exc:
            self.call_from_thread(self.notify, f"export failed: {exc}; check {self.export_dir} is writable",
                                  severity="error")
            return
        self.call_from_thread(self.notify, f"exported {len(rows):,} rows to {path}", timeout=8)

    # --- sponsor actions -----------------------------------------------------------------
    def _need_source(self) -> bool:
        if self.source is None:
            self.notify("not connected to a coordinator yet", severity="warning")
            return False
        return True

    def action_create_bounty(self) -> None:
        from l402tui.tui.screens.create_bounty import CreateBountyScreen

        if not self._need_source():
            return

        def chosen(result) -> None:  # the dialog created it (errors stay in the dialog)
            if result is not None:
                self.notify(result.message, timeout=10)
                self.action_refresh()

        self.push_screen(CreateBountyScreen(self.source), chosen)

    def action_fund_bounty(self) -> None:
        bounty = self._selected("bounties")
        if not self._need_source() or bounty is None:
            if bounty is None:
                self.notify("select a bounty in the Bounties tab first", severity="warning")
            return
        if bounty.status != "AWAITING_FUNDING":
            self.notify(f"{bounty.name} is {bounty.status}: only a bounty AWAITING_FUNDING has an invoice to pay "
                        "(self-funding is chosen when creating)", severity="warning")
            return
        self._fund(bounty.id, bounty.name)

    @work(exclusive=True, group="sponsor", exit_on_error=False)
    async def _fund(self, bounty_id: str, name: str) -> None:
        from l402tui.tui.screens.confirm import ConfirmScreen

        try:
            request: FundingRequest = await self.source.fund_bounty(bounty_id)
        except SourceError as exc:
            self.notify(f"fund failed: {exc}", severity="error", timeout=10)
            return
        if request.bolt11:
            self.copy_to_clipboard(request.bolt11)  # OSC 52: paste it into the sponsor's wallet
        self.push_screen(ConfirmScreen(
            f"Fund {name}",
            Text.assemble("The sponsor pays this hold invoice: ", (f"{fmt.sats(request.amount_msat)} sat", "bold"),
                          " (pool + coordinator fee). It was copied to the clipboard.\n\n",
                          (request.bolt11 or "", "dim"),
                          "\n\nThe payment stays held (escrow) and the bounty opens as soon as it arrives; "
                          "unpaid, the invoice expires and the bounty is cancelled."),
            [("ok", "OK", "primary")]))

    def action_review_submission(self) -> None:
        from l402tui.tui.screens.review import ReviewScreen

        submission = self._selected("submissions")
        if not self._need_source() or submission is None:
            if submission is None:
                self.notify("select a submission in the Submissions tab first", severity="warning")
            return

        def decided(decision: str | None) -> None:
            if decision is not None:
                self._run_sponsor_action(
                    "review", lambda: self.source.review_submission(submission.id, decision))

        self.push_screen(ReviewScreen(self.source, submission), decided)

    def action_show_wallet(self) -> None:
        from l402tui.tui.screens.wallet import WalletScreen

        if not self._need_source():
            return
        bounties = self.main_screen.query_one("#bounties-table").all_records
        self.push_screen(WalletScreen(self.source, list(bounties)))

    def action_close_bounty(self) -> None:
        from l402tui.tui.screens.confirm import ConfirmScreen

        bounty = self._selected("bounties")
        if not self._need_source() or bounty is None:
            if bounty is None:
                self.notify("select a bounty in the Bounties tab first", severity="warning")
            return
        question = (f"Close {bounty.name} now? No new submissions are accepted; "
                    f"{fmt.sats(bounty.pool_left_msat)} sat left in the pool go back to the sponsor, "
                    "and the held-out salt is revealed.")

        def chosen(choice: str | None) -> None:
            if choice == "close":
                self._run_sponsor_action("close", lambda: self.source.close_bounty(bounty.id))

        self.push_screen(ConfirmScreen("Close bounty", question, [("close", "Close bounty", "error")]), chosen)

    @work(exclusive=True, group="sponsor", exit_on_error=False)
    async def _run_sponsor_action(self, what: str, call) -> None:
        from l402tui.tui.widgets.status_line import StatusLine

        status = self.main_screen.query_one(StatusLine)
        status.set(busy=f"{what}: working…")  # creating measures a baseline: it can take minutes
        try:
            result = await call()
        except SourceError as exc:
            self.notify(f"{what} failed: {exc}", severity="error", timeout=30)
            status.set(problem=f"{what} failed (see the message)")
            return
        finally:
            status.set(busy="")
        self.notify(result.message, timeout=10)
        self.action_refresh()

    # --- the agent loop ------------------------------------------------------------------
    def action_agent(self, verb: str) -> None:
        if self.agent is None:
            self.notify("no agent loop in this session (see the agent panel, key a)", severity="warning")
            return
        self._agent_call(verb)

    @work(exclusive=True, group="agent-control", exit_on_error=False)
    async def _agent_call(self, verb: str) -> None:
        try:
            await getattr(self.agent, verb)()
        except Exception as exc:
            self.notify(f"agent {verb} failed: {exc}", severity="error", timeout=10)
