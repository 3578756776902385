"""A sponsor's posting fee in the operator's books, once, whichever sees it paid first:
the invoice stream (``Coordinator.apply_invoice_state``) or the sponsor presenting the
preimage (``sponsor_access``)."""

from __future__ import annotations

from l402tui.coordinator import ledger
from l402tui.store.db import Txn


async def book_posting_fee(txn: Txn, payment_hash: str) -> bool:
    """Post the fee of a paid ``posting_fee`` invoice to the coordinator's fees; False when
    there is no such invoice or it is booked already."""
    row = await txn.fetchone(
        "SELECT i.amount_msat, t.sponsor_id FROM invoices i JOIN sponsor_tokens t ON t.payment_hash = i.payment_hash "
        "WHERE i.payment_hash = ? AND i.kind = 'posting_fee'", (payment_hash,))
    if row is None:
        return False
    return await ledger.post(txn, f"posting_fee:{payment_hash}",
                             [ledger.Transfer(f"posting_fee:{row['sponsor_id']}", ledger.FEES, int(row["amount_msat"]))],
                             bounty_id=None, memo=f"posting fee paid by sponsor {row['sponsor_id']}")
