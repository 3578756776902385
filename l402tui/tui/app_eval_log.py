"""The eval log pane and the drill-down from a table row (the part of L402App that picks
which evaluation's log to follow and opens the detail screens).

A running evaluation takes over the pane; Enter on a submission pins its evaluation.
The log is read from an offset kept on the app, so a restarted follower never rereads.
"""

from __future__ import annotations

import asyncio

from textual import work

from l402tui.tui.app_loading import while_shown
from l402tui.tui.messages import EvalLogRead, EvaluationsLoaded
from l402tui.tui.source import EvaluationRow
from l402tui.tui.widgets.eval_log_pane import EvalLogPane
from l402tui.tui.widgets.record_table import RecordTable

FINISHED = ("DONE", "FAILED")


class EvalLogFollowing:
    _log_offset = 0
    _log_follower = None

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

    # --- Enter on a row: its detail screen ---------------------------------------------------
    def on_record_table_row_chosen(self, event: RecordTable.RowChosen) -> None:
        table_id = event.table.id
        if table_id == "submissions-table":
            self._submission_chosen(event.record)
        elif table_id == "bounties-table":
            self._bounty_chosen(event.record)

    def _submission_chosen(self, record) -> None:
        from l402tui.tui.screens.submission_detail import SubmissionDetailScreen

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

    def _bounty_chosen(self, record) -> None:
        from l402tui.tui.screens.bounty_detail import BountyDetailScreen

        screen = self.main_screen
        self.push_screen(BountyDetailScreen(
            record, screen.query_one("#submissions-table", RecordTable).all_records,
            screen.query_one("#ledger-table", RecordTable).all_records, now=self.clock()))
