"""One submission in full: ids, verdict, reasons, payouts, its evaluations and their logs.

Opened with Enter on a submission row.  The log of the chosen evaluation follows
while it runs (the same reader as the main pane); `[`/`]` switch between the
submission's evaluations, `y` copies the full submission id.
"""

from __future__ import annotations

import asyncio
from typing import Any

from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Static

from l402tui.tui import format as fmt
from l402tui.tui.source import CoordinatorSource, EvaluationRow, LedgerRow, SourceError, SubmissionRow
from l402tui.tui.widgets.eval_log_pane import EvalLogPane
from l402tui.tui.widgets.record_table import status_text

FINISHED = ("DONE", "FAILED")
LABEL_WIDTH = 30


def verdict_lines(verdict: Any, prefix: str = "") -> list[tuple[str, str]]:
    """A verdict dict flattened to (key, formatted value) pairs, numbers without noise."""
    out: list[tuple[str, str]] = []
    if isinstance(verdict, dict):
        for key, value in verdict.items():
            name = f"{prefix}{key}"
            if isinstance(value, dict):
                out.extend(verdict_lines(value, f"{name}."))
            elif isinstance(value, list) and all(not isinstance(v, (dict, list)) for v in value):
                out.append((name, ", ".join(_value(v, name) for v in value) or "—"))
            else:
                out.append((name, _value(value, name)))
    elif verdict is not None:
        out.append((prefix.rstrip(".") or "verdict", _value(verdict, prefix)))
    return out


def _value(value: Any, name: str) -> str:
    if isinstance(value, bool) or value is None:
        return "—" if value is None else ("yes" if value else "no")
    if isinstance(value, float):
        return fmt.score(value)
    if isinstance(value, int) and name.endswith("_msat"):
        return f"{fmt.sats_exact(value)} sat"
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    if isinstance(value, (dict, list)):
        return str(value)
    return fmt.reason_words(value) if name.endswith(("reason", "reason_code", "codes")) else str(value)


class SubmissionDetailScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    SubmissionDetailScreen { align: center middle; }
    SubmissionDetailScreen > Vertical { width: 100%; height: 100%; border: round $primary;
                                        background: $surface; padding: 0 1; }
    SubmissionDetailScreen #detail-scroll { height: 1fr; min-height: 6; }
    SubmissionDetailScreen EvalLogPane { height: 2fr; min-height: 6; border-top: solid $panel; }
    """
    BINDINGS = [
        Binding("escape,q", "close", "Close", id="detail_close"),
        Binding("y", "copy_id", "Copy id", id="detail_copy"),
        Binding("left_square_bracket", "other_evaluation(-1)", "Prev eval", id="detail_prev_eval"),
        Binding("right_square_bracket", "other_evaluation(1)", "Next eval", id="detail_next_eval"),
    ]

    def __init__(self, source: CoordinatorSource, submission: SubmissionRow, evaluations: list[EvaluationRow],
                 ledger: list[LedgerRow], *, log_cap_bytes: int = 1024 * 1024, clock=None, log_poll_s: float = 0.5):
        super().__init__()
        self.source = source
        self.submission = submission
        # Oldest first, so [ and ] walk in time order; the newest is shown first.
        self.evaluations = sorted((e for e in evaluations if e.submission_id == submission.id), key=lambda e: e.id)
        self.payments = [r for r in ledger if r.submission_id == submission.id]
        self.detail: dict[str, Any] | None = None
        self.index = len(self.evaluations) - 1
        self.log_cap_bytes = log_cap_bytes
        self.clock = clock
        self.log_poll_s = log_poll_s

    def compose(self) -> ComposeResult:
        with Vertical():
            with VerticalScroll(id="detail-scroll"):
                yield Static(self._summary(), id="detail-summary")
            kwargs = {"clock": self.clock} if self.clock is not None else {}
            yield EvalLogPane(self.log_cap_bytes, id="detail-log", **kwargs)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one(Vertical).border_title = f"Submission {self.submission.id}"
        pane = self.query_one(EvalLogPane)
        pane.logs_here = self.source.has_eval_logs
        self._load_detail()
        self._show_log()

    # --- the summary --------------------------------------------------------------------
    def _summary(self) -> Text | Table:
        s = self.submission
        grid = Table.grid(padding=(0, 2))
        # Capped: a long verdict key took half of 80 columns from every value (and wrapped, it
        # split a label over two rows beside one value).
        grid.add_column(style="bold", no_wrap=True, max_width=LABEL_WIDTH, overflow="ellipsis")
        grid.add_column()
        grid.add_row("Submission", Text(s.id, style="bold"))
        grid.add_row("Bounty", s.bounty_id)
        grid.add_row("Status", status_text(s.status))
        grid.add_row("Claimed / held-out", f"{fmt.score(s.claimed_score)} / {fmt.score(s.heldout_score)}")
        grid.add_row("Submitted", f"{fmt.utc(s.created_at)} UTC")
        grid.add_row("Paid", f"{fmt.sats(s.payout_msat)} sat")
        detail = self.detail or {}
        reasons = detail.get("reasons") or s.reasons
        grid.add_row("Reasons", Text(fmt.reasons_text(reasons) or "none recorded",
                                     style="yellow" if s.status == "FLAGGED" else ""))
        verdict = verdict_lines(detail.get("verdict"), "")
        if verdict:
            grid.add_row("Verdict", "")
        for key, value in verdict:  # indented under "Verdict" rather than each prefixed with it
            grid.add_row(Text(f"  {key}", style="not bold"), value)
        evaluation = detail.get("evaluation") or {}
        if evaluation.get("error"):
            grid.add_row("Evaluation error", Text(str(evaluation["error"]), style="red"))
        if self.payments:
            for p in self.payments:
                line = f"{p.kind} {fmt.sats_exact(p.amount_msat)} sat · {p.status}"
                grid.add_row("Money", Text(line + (f" · {p.detail}" if p.detail else "")))
        else:
            grid.add_row("Money", Text("nothing paid or held for it yet", style="dim"))
        if self.evaluations:
            names = " ".join(f"[#{e.id} {e.status}]" if i == self.index else f"#{e.id} {e.status}"
                             for i, e in enumerate(self.evaluations))
            grid.add_row("Evaluations", Text(names + ("   ([ / ] to switch)" if len(self.evaluations) > 1 else "")))
        else:
            grid.add_row("Evaluations", Text("none yet", style="dim"))
        if s.status == "FLAGGED" and self.source.can_act:
            grid.add_row("", Text("Flagged: close this and press v to review (accept or confirm gaming).",
                                  style="bold magenta"))
        return grid

    @work(exclusive=True, group="detail", exit_on_error=False)
    async def _load_detail(self) -> None:
        try:
            self.detail = await self.source.submission_detail(self.submission.id)
        except SourceError as exc:
            self.notify(f"cannot load the verdict: {exc}", severity="warning")
            return
        except Exception as exc:  # a broken source must not take the screen down
            self.notify(f"cannot load the verdict: {type(exc).__name__}: {exc}", severity="warning")
            return
        if self.is_attached:
            self.query_one("#detail-summary", Static).update(self._summary())

    # --- the log ------------------------------------------------------------------------
    @property
    def evaluation(self) -> EvaluationRow | None:
        return self.evaluations[self.index] if 0 <= self.index < len(self.evaluations) else None

    def _show_log(self) -> None:
        self.query_one(EvalLogPane).show_evaluation(self.evaluation)
        if self.evaluation is not None and self.source.has_eval_logs:
            self._follow(self.evaluation)

    @work(exclusive=True, group="detail-log", exit_on_error=False)
    async def _follow(self, evaluation: EvaluationRow) -> None:
        offset = 0
        pane = self.query_one(EvalLogPane)
        while self.is_attached:
            try:
                lines, offset = await self.source.eval_log(evaluation.id, offset)
            except Exception as exc:
                pane.append([f"[l402tui] cannot read this log: {exc}"])
                return
            if lines:
                pane.append(lines)
            elif evaluation.status in FINISHED:
                return
            else:
                await asyncio.sleep(self.log_poll_s)
                evaluation = await self._refreshed(evaluation)

    async def _refreshed(self, evaluation: EvaluationRow) -> EvaluationRow:
        # A running evaluation finishes: its status (and the pane's title) must follow.
        try:
            rows = await self.source.evaluations()
        except Exception:
            return evaluation
        new = next((e for e in rows if e.id == evaluation.id), evaluation)
        if new.status != evaluation.status and self.is_attached:
            self.query_one(EvalLogPane).show_evaluation(new)
        return new

    # --- actions ------------------------------------------------------------------------
    def action_other_evaluation(self, step: int) -> None:
        if len(self.evaluations) < 2:
            return
        self.index = (self.index + step) % len(self.evaluations)
        self.query_one("#detail-summary", Static).update(self._summary())
        self._show_log()

    def action_copy_id(self) -> None:
        self.app.copy_to_clipboard(self.submission.id)
        self.notify(f"copied {self.submission.id}", timeout=3)

    def action_close(self) -> None:
        self.dismiss(None)
