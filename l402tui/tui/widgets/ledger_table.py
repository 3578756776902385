"""The ledger pane: funding holds, stakes, payouts, holdbacks (with release time), refunds."""

from __future__ import annotations

from rich.text import Text

from l402tui.tui import format as fmt
from l402tui.tui.source import LedgerRow
from l402tui.tui.widgets.record_table import Column, RecordTable, status_text


class LedgerTable(RecordTable[LedgerRow]):
    EXPORT_NAME = "ledger"
    EMPTY_TEXT = "No money has moved yet."
    COLUMNS = (
        Column("At (UTC)", lambda r: fmt.utc(r.created_at)),
        Column("Kind", lambda r: Text(r.kind, style="bold")),
        Column("Status", lambda r: status_text(r.status)),
        Column("Amount (sat)", lambda r: Text(fmt.sats(r.amount_msat), justify="right")),
        Column("Detail", lambda r: r.detail),
        Column("Bounty", lambda r: fmt.short_id(r.bounty_id, 14)),
        Column("Submission", lambda r: fmt.short_id(r.submission_id, 14)),
        Column("Reference", lambda r: Text(fmt.short_id(r.reference, 24), style="dim")),
    )

    def record_key(self, record: LedgerRow) -> str:
        return f"{record.kind}:{record.reference}"

    def copy_text(self, record: LedgerRow) -> str:
        return record.reference
