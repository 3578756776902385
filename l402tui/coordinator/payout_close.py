"""Closing a bounty: reveal the salts, refund what is left to the sponsor, then SETTLED.

Before the funding hold is settled the refund is cancelling it; after, what is left of
the pool becomes a refund payment the sponsor claims (a self-funded pool is released).
"""

from __future__ import annotations

import logging

from l402tui.config import Config
from l402tui.coordinator import ledger, lifecycle, payout_sender, stability
from l402tui.coordinator.payout_funding import funding_invoice, keysend_ok, load_bounty, record_funding
from l402tui.coordinator.payout_sender import payout_lock
from l402tui.lightning.backend import LightningBackend, LightningError
from l402tui.store.db import Store, Txn, now

log = logging.getLogger("l402tui.payouts")


async def refund_rest(store: Store, lightning: LightningBackend, cfg: Config, bounty_id: str) -> None:
    """Give the sponsor back what is left in the pool: cancel the hold if never settled, else pay it."""
    bounty = await load_bounty(store, bounty_id)
    if bounty["status"] == "CLOSED" and await judging(store, bounty_id):
        return  # submissions made before the close are still judged and paid first; the next tick retries
    async with store.transaction() as txn:
        await record_funding(txn, bounty_id)
    invoice = await funding_invoice(store, bounty)
    if invoice is not None and invoice["status"] in ("ACCEPTED", "CANCELED", "EXPIRED"):
        # Never settled, so nothing was paid out: the whole hold goes back by cancelling it
        # (or has gone back already, when the node cancelled it before its HTLC expired).
        if invoice["status"] == "ACCEPTED":
            try:
                await lightning.cancel_hold(invoice["payment_hash"])
            except LightningError as exc:
                log.warning("cannot cancel the funding hold of %s yet (%s); retried at the next tick", bounty_id, exc)
                return
        async with ledger.transition(store, bounty_id) as txn:
            await txn.execute("UPDATE invoices SET status = 'CANCELED', updated_at = ? WHERE payment_hash = ? "
                              "AND status = 'ACCEPTED'", (now(), invoice["payment_hash"]))
            amount = min(int(invoice["amount_msat"]), await ledger.balance(txn, ledger.pool(bounty_id)))
            if amount > 0 and await ledger.post(txn, f"refund_cancel:{bounty_id}", [
                    ledger.Transfer(ledger.pool(bounty_id), ledger.refund(bounty_id), amount)],
                    bounty_id=bounty_id, memo="funding hold cancelled: the sponsor's payment fails back"):
                await txn.event("refund.cancelled_hold", bounty_id, amount_msat=amount)
    left = await ledger.balance(store, ledger.pool(bounty_id))
    if left <= 0:
        return
    keysend = await keysend_ok(lightning)
    async with ledger.transition(store, bounty_id) as txn:
        n = int((await txn.fetchone("SELECT COUNT(*) AS n FROM payments WHERE bounty_id = ? AND purpose = 'refund'",
                                    (bounty_id,)))["n"])
        if bounty["funding_mode"] == "self":
            # The pool was a reservation of the operator's own sats: releasing it is the refund.
            await ledger.post(txn, f"refund_release:{bounty_id}:{await count_txns(txn, 'refund_release:' + bounty_id)}",
                              [ledger.Transfer(ledger.pool(bounty_id), ledger.refund(bounty_id), left)],
                              bounty_id=bounty_id, memo="self-funded pool released")
            await txn.event("refund.released", bounty_id, amount_msat=left)
            return
        await ledger.post(txn, f"refund_alloc:{bounty_id}:{n}",
                          [ledger.Transfer(ledger.pool(bounty_id), ledger.owed_sponsor(bounty_id), left)],
                          bounty_id=bounty_id, memo="what is left goes back to the sponsor")
        await payout_sender.add(txn, key=f"refund:{bounty_id}:{n}", bounty_id=bounty_id, submission_id=None,
                                purpose="refund", amount_msat=left, destination=None, keysend=keysend)
        await txn.event("refund.owed", bounty_id, amount_msat=left,
                        action="the sponsor claims it with a BOLT11 invoice for exactly this amount")


async def judging(conn: Store | Txn, bounty_id: str) -> bool:
    """Are submissions of this bounty still waiting for a verdict (or its payout decision)?"""
    row = await conn.fetchone(
        "SELECT 1 FROM submissions s WHERE s.bounty_id = ? AND (s.status IN ('RECEIVED', 'AWAITING_STAKE', 'QUEUED', "
        "'EVALUATING') OR (s.status = 'ACCEPTED' AND NOT EXISTS (SELECT 1 FROM events e WHERE "
        "e.kind = 'payout.allocated' AND e.subject_id = s.id))) LIMIT 1", (bounty_id,))
    return row is not None


async def count_txns(txn: Txn, txn_prefix: str) -> int:
    row = await txn.fetchone("SELECT COUNT(DISTINCT txn_id) AS n FROM ledger_entries WHERE txn_id LIKE ?",
                             (txn_prefix + ":%",))
    return int(row["n"])


async def maybe_settle(store: Store, bounty_id: str) -> bool:
    """CLOSED -> SETTLED once no holdback, pool or stake decision is outstanding."""
    async with ledger.transition(store, bounty_id) as txn:
        books = await ledger.bounty_books(txn, bounty_id)
        open_timers = await txn.fetchone(
            "SELECT COUNT(*) AS n FROM timers t JOIN submissions s ON s.id = t.subject_id "
            "WHERE t.kind = ? AND t.done_at IS NULL AND s.bounty_id = ?", (stability.TIMER, bounty_id))
        flagged = await txn.fetchone(
            "SELECT COUNT(*) AS n FROM submissions s JOIN invoices i ON i.payment_hash = s.stake_payment_hash "
            "WHERE s.bounty_id = ? AND s.status = 'FLAGGED' AND i.status = 'ACCEPTED'", (bounty_id,))
        if (books.held_back or books.pool_left or books.stakes_held or open_timers["n"] or flagged["n"]
                or await judging(txn, bounty_id)):
            return False
        return await lifecycle.move_bounty(txn, bounty_id, "CLOSED", "SETTLED", **books.as_dict())


async def on_bounty_closed(store: Store, lightning: LightningBackend, cfg: Config, bounty_id: str) -> None:
    """After OPEN -> CLOSED: refund the rest to the sponsor; SETTLED once holdbacks are resolved."""
    async with payout_lock(store):
        bounty = await load_bounty(store, bounty_id)
        if bounty["status"] != "CLOSED":
            return
        await refund_rest(store, lightning, cfg, bounty_id)
        await payout_sender.process(store, lightning, cfg)
        await maybe_settle(store, bounty_id)
