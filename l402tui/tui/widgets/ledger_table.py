"""The ledger pane: funding holds, stakes, payouts, holdbacks (with release time), refunds."""

from __future__ import annotations

from rich.text import Text

from l402tui.tui import format as fmt
from l402tui.tui.source import LedgerRow
from l402tui.tui.widgets.record_table import Column, RecordTable, status_text


class LedgerTable(RecordTable[LedgerRow]):
    EXPORT_NAME = "ledger"
    EMPTY_TEXT = "No money has moved yet."
    @property
    def COLUMNS(self):  # type: ignore[override]  # "release in 1d 23h" needs the clock
        return (
            Column("At (UTC)", lambda r: fmt.utc(r.created_at), sort=lambda r: r.created_at),
            Column("Kind", lambda r: Text(r.kind, style="bold")),
            Column("Status", lambda r: status_text(r.status), sort=lambda r: r.status),
            # msat matter in the books (fees, L402 prices): shown only where there are some.
            Column("Amount (sat)", lambda r: Text(fmt.sats_exact(r.amount_msat), justify="right"),
                   sort=lambda r: r.amount_msat),
            Column("Detail", self._detail, shrink=17, sort=lambda r: (r.due_at or 0, r.detail)),
            Column("Bounty", lambda r: r.bounty_id or "—", drop=3),
            Column("Submission", lambda r: r.submission_id or "—", drop=2),
            Column("Reference", lambda r: Text(r.reference, style="dim"), shrink=8, drop=1),
        )

    def _detail(self, r: LedgerRow) -> str:
        """A release or expiry as "release in 1d 23h" (cut to 80 columns, "release 2026-12-…" told
        nothing); the absolute time stays in the CSV and the copy."""
        if r.due_at is None:
            return r.detail
        verb = r.detail.partition(" ")[0]
        return f"{verb} {fmt.until(r.due_at, self.clock())}"

    def record_key(self, record: LedgerRow) -> str:
        return f"{record.kind}:{record.reference}"

    def copy_text(self, record: LedgerRow) -> str:
        return record.reference
