"""The sponsor's funding: booking it, settling the hold at the first payout, what is left.

Shared by payouts (allocation), closing (refunds) and stakes.
"""

from __future__ import annotations

import logging
from typing import Any

from l402tui.coordinator import ledger
from l402tui.coordinator.errors import Conflict, Unavailable
from l402tui.coordinator.lifecycle import bounty_row as load_bounty, submission_row as load_submission
from l402tui.lightning.backend import InvoiceState, LightningBackend, LightningError
from l402tui.store.db import Store, Txn, now

log = logging.getLogger("l402tui.payouts")


class FundingUnavailable(Conflict):
    """The funding hold can no longer be settled (cancelled or expired): nothing to pay from."""

    code = "funding_unavailable"


async def funding_invoice(conn: Store | Txn, bounty: dict[str, Any]) -> dict[str, Any] | None:
    if bounty["funding_mode"] == "self" or not bounty["funding_payment_hash"]:
        return None
    return await conn.fetchone("SELECT * FROM invoices WHERE payment_hash = ?", (bounty["funding_payment_hash"],))


async def keysend_ok(lightning: LightningBackend) -> bool:
    try:
        return (await lightning.status()).supports_keysend
    except LightningError:
        return True  # decided again at send time; a failed keysend falls back to /claim


# -- funding ------------------------------------------------------------------------


async def record_funding(txn: Txn, bounty_id: str) -> bool:
    """Post the sponsor's funding into the pool (idempotent).  The service may call this in
    the transaction that opens the bounty; payouts also calls it before it needs the pool."""
    bounty = await load_bounty(txn, bounty_id)
    invoice = await funding_invoice(txn, bounty)
    if invoice is not None:
        if invoice["status"] not in ("ACCEPTED", "SETTLED"):
            return False
        amount = int(invoice["amount_msat"])
    elif bounty["funding_mode"] == "self" and bounty["status"] not in ("DRAFT", "AWAITING_FUNDING", "CANCELED"):
        amount = int(bounty["pool_msat"])  # self-funded: the operator reserves the pool itself
    else:
        return False
    return await ledger.post(txn, f"fund:{bounty_id}",
                             [ledger.Transfer(ledger.sponsor_funding(bounty_id), ledger.pool(bounty_id), amount)],
                             bounty_id=bounty_id, memo=f"funded ({bounty['funding_mode']})")


async def settle_funding(store: Store, lightning: LightningBackend, bounty: dict[str, Any]) -> None:
    """Settle the funding hold at the first payout: from here on the coordinator holds the pool."""
    invoice = await funding_invoice(store, bounty)
    if invoice is None or invoice["status"] == "SETTLED":
        return
    if invoice["status"] != "ACCEPTED":
        raise FundingUnavailable(f"bounty {bounty['id']}: the funding invoice is {invoice['status']}, so there is "
                                 "no held payment to pay out from; the sponsor must fund it again")
    try:
        await lightning.settle_hold(invoice["preimage"], payment_hash=invoice["payment_hash"])
    except LightningError as exc:
        try:
            state = (await lightning.lookup_invoice(invoice["payment_hash"])).state
        except LightningError:
            raise Unavailable(f"cannot settle the funding hold of {bounty['id']} ({exc}); retried later") from None
        if state is not InvoiceState.SETTLED:  # settled already by us before a crash is fine
            async with store.transaction() as txn:
                await txn.execute("UPDATE invoices SET status = ?, updated_at = ? WHERE payment_hash = ?",
                                  (state.value, now(), invoice["payment_hash"]))
                await txn.event("funding.lost", bounty["id"], state=state.value, error=str(exc))
            raise FundingUnavailable(f"bounty {bounty['id']}: the funding hold is {state.value} ({exc}); "
                                     "nothing can be paid from it") from None
    async with ledger.transition(store, bounty["id"]) as txn:
        if await txn.execute("UPDATE invoices SET status = 'SETTLED', updated_at = ? WHERE payment_hash = ? "
                             "AND status != 'SETTLED'", (now(), invoice["payment_hash"])):
            await txn.event("funding.settled", bounty["id"], amount_msat=invoice["amount_msat"],
                            note="the coordinator now holds the rest of the pool")
        await record_funding(txn, bounty["id"])


async def left_msat(conn: Store | Txn, bounty: dict[str, Any]) -> int:
    """What the payout rule may still take: the pool's balance, and never more than ``pool_msat``
    net of holdbacks returned (the funding's fee margin and forfeited stakes go back to the sponsor)."""
    pool = ledger.pool(bounty["id"])
    balance = await ledger.balance(conn, pool)
    taken = await conn.fetchone(
        "SELECT COALESCE(-SUM(CASE WHEN txn_id LIKE 'payout:%' THEN amount_msat END), 0) AS gross, "
        "COALESCE(SUM(CASE WHEN txn_id LIKE 'holdback_forfeit:%' THEN amount_msat END), 0) AS back "
        "FROM ledger_entries WHERE account = ?", (pool,))
    return max(0, min(balance, int(bounty["pool_msat"]) - int(taken["gross"]) + int(taken["back"])))


async def pool_left(conn: Store | Txn, bounty: str | dict[str, Any]) -> int:
    """The one "pool left" (msat) every view shows: what the payout rule can still pay from
    this bounty (a bounty id, or its ``bounties`` row).  Before the ledger records the funding
    it is the whole pool while the bounty may still open, else nothing; afterwards
    :func:`left_msat`, which leaves out the funding's fee margin (a hold-funded pool's account
    holds pool + fee, and the fee is never the agents')."""
    row = await load_bounty(conn, bounty) if isinstance(bounty, str) else bounty
    if not await ledger.posted(conn, f"fund:{row['id']}"):
        return int(row["pool_msat"]) if row["status"] in ("OPEN", "AWAITING_FUNDING", "DRAFT") else 0
    return await left_msat(conn, row)
