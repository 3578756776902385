"""Money out of a bounty: payouts, stakes, refunds and the close.

The coordinator service calls these after its own transitions commit (see
``coordinator/seams.py``); each is idempotent, so a restart simply calls it again.

- :func:`on_verdict` — refund the submission's stake, or wait for the sponsor if flagged.
- :func:`on_accepted` — settle the funding hold (first payout), allocate
  ``pool × improvement / target`` (capped, minus the fee): 80 % owed now, 20 % held
  back until the stability re-evaluation; push it by keysend or wait for ``/claim``.
- :func:`on_bounty_closed` — refund what is left to the sponsor; SETTLED when the
  holdbacks are resolved.
- :func:`claim` / :func:`claim_refund` — pay an invoice for exactly an amount owed.
- :func:`confirm_gaming` — the sponsor's decision on a flagged submission's stake.
- :func:`tick` — retries, reconciliation after a crash, holdback timers, closing.

Every allocation is posted to the ledger in the transaction that records it, and the
bounty's books are checked before that transaction commits (``ledger.transition``).
"""

from __future__ import annotations

import logging
from typing import Any

from l402tui.config import Config
from l402tui.coordinator import ledger, payout_sender, stability
from l402tui.coordinator.errors import Conflict, Invalid, NotFound, Unavailable
from l402tui.coordinator.payout_math import bounty_terms, split_payout, verdict_improvement
from l402tui.coordinator.payout_sender import PayoutsHalted, payout_lock
from l402tui.lightning.backend import InvoiceState, LightningBackend, LightningError
from l402tui.store.db import Store, Txn, now

log = logging.getLogger("l402tui.payouts")

__all__ = ["on_verdict", "on_accepted", "on_bounty_closed", "claim", "claim_refund", "confirm_gaming", "tick",
           "record_funding", "pool_left", "payout_summary", "resolve_unknown", "PayoutsHalted", "FundingUnavailable"]

PAYABLE = ("ACCEPTED", "PAID_PARTIAL", "PAID_FULL", "HOLDBACK_FORFEITED")


class FundingUnavailable(Conflict):
    """The funding hold can no longer be settled (cancelled or expired): nothing to pay from."""

    code = "funding_unavailable"


async def _bounty(conn: Store | Txn, bounty_id: str) -> dict[str, Any]:
    row = await conn.fetchone("SELECT * FROM bounties WHERE id = ?", (bounty_id,))
    if row is None:
        raise NotFound(f"no bounty {bounty_id!r}", code="unknown_bounty")
    return row


async def _submission(conn: Store | Txn, submission_id: str) -> dict[str, Any]:
    row = await conn.fetchone("SELECT * FROM submissions WHERE id = ?", (submission_id,))
    if row is None:
        raise NotFound(f"no submission {submission_id!r}", code="unknown_submission")
    return row


async def _funding_invoice(conn: Store | Txn, bounty: dict[str, Any]) -> dict[str, Any] | None:
    if bounty["funding_mode"] == "self" or not bounty["funding_payment_hash"]:
        return None
    return await conn.fetchone("SELECT * FROM invoices WHERE payment_hash = ?", (bounty["funding_payment_hash"],))


async def _keysend_ok(lightning: LightningBackend) -> bool:
    try:
        return (await lightning.status()).supports_keysend
    except LightningError:
        return True  # decided again at send time; a failed keysend falls back to /claim


# -- funding ------------------------------------------------------------------------


async def record_funding(txn: Txn, bounty_id: str) -> bool:
    """Post the sponsor's funding into the pool (idempotent).  The service may call this in
    the transaction that opens the bounty; payouts also calls it before it needs the pool."""
    bounty = await _bounty(txn, bounty_id)
    invoice = await _funding_invoice(txn, bounty)
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


async def _settle_funding(store: Store, lightning: LightningBackend, bounty: dict[str, Any]) -> None:
    """Settle the funding hold at the first payout: from here on the coordinator holds the pool."""
    invoice = await _funding_invoice(store, bounty)
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


async def _left(conn: Store | Txn, bounty: dict[str, Any]) -> int:
    """What the payout rule may still take: the pool's balance, and never more than ``pool_msat``
    net of holdbacks returned (the funding's fee margin and forfeited stakes go back to the sponsor)."""
    pool = ledger.pool(bounty["id"])
    balance = await ledger.balance(conn, pool)
    taken = await conn.fetchone(
        "SELECT COALESCE(-SUM(CASE WHEN txn_id LIKE 'payout:%' THEN amount_msat END), 0) AS gross, "
        "COALESCE(SUM(CASE WHEN txn_id LIKE 'holdback_forfeit:%' THEN amount_msat END), 0) AS back "
        "FROM ledger_entries WHERE account = ?", (pool,))
    return max(0, min(balance, int(bounty["pool_msat"]) - int(taken["gross"]) + int(taken["back"])))


async def pool_left(store: Store, bounty_id: str) -> int:
    """Msat the payout rule can still pay from this bounty (for views)."""
    bounty = await _bounty(store, bounty_id)
    if not await ledger.posted(store, f"fund:{bounty_id}"):
        return int(bounty["pool_msat"]) if bounty["status"] in ("OPEN", "AWAITING_FUNDING", "DRAFT") else 0
    return await _left(store, bounty)


# -- verdicts and payouts ---------------------------------------------------------------


async def on_verdict(store: Store, lightning: LightningBackend, cfg: Config, submission_id: str) -> None:
    """Resolve the stake after a verdict: refunded unless flagged (then the sponsor decides)."""
    async with payout_lock(store):
        sub = await _submission(store, submission_id)
        if sub["status"] == "FLAGGED":
            async with store.transaction() as txn:
                if sub["stake_payment_hash"] and not await txn.fetchone(
                        "SELECT 1 FROM events WHERE kind = 'stake.awaiting_sponsor' AND subject_id = ?",
                        (submission_id,)):
                    await txn.event("stake.awaiting_sponsor", submission_id, bounty_id=sub["bounty_id"],
                                    action="the sponsor confirms gaming (stake forfeited) or not (refunded)")
            return
        if sub["status"] in ("REJECTED", *PAYABLE):
            await _resolve_stake(store, lightning, sub, forfeit=False)


async def on_accepted(store: Store, lightning: LightningBackend, cfg: Config, submission_id: str) -> dict[str, Any]:
    """Allocate and start paying an accepted submission's payout (idempotent)."""
    async with payout_lock(store):
        reason = await ledger.halted_reason(store)
        if reason:
            raise PayoutsHalted(f"payouts are halted ({reason}); submission {submission_id} waits")
        sub = await _submission(store, submission_id)
        if sub["status"] not in PAYABLE:
            raise Conflict(f"submission {submission_id} is {sub['status']}, not ACCEPTED; nothing to pay",
                           code="not_accepted")
        if not await _allocated(store, submission_id):
            await _allocate(store, lightning, cfg, sub)
        await _resolve_stake(store, lightning, await _submission(store, submission_id), forfeit=False)
        row = await store.fetchone("SELECT idempotency_key, status FROM payments WHERE idempotency_key = ?",
                                   (f"payout:{submission_id}",))
        if row is not None and row["status"] == "QUEUED":
            await payout_sender.attempt(store, lightning, cfg, row["idempotency_key"])
        return await payout_summary(store, submission_id)


async def _allocated(conn: Store | Txn, submission_id: str) -> bool:
    """The payout decision is made once; its event is the marker (a 0-msat payout posts no entries)."""
    return await conn.fetchone("SELECT 1 FROM events WHERE kind = 'payout.allocated' AND subject_id = ?",
                               (submission_id,)) is not None


async def _allocate(store: Store, lightning: LightningBackend, cfg: Config, sub: dict[str, Any]) -> None:
    bounty = await _bounty(store, sub["bounty_id"])
    if bounty["status"] not in ("OPEN", "CLOSED"):
        async with store.transaction() as txn:
            await txn.event("payout.impossible", sub["id"], bounty_id=bounty["id"],
                            reason=f"the bounty is {bounty['status']}")
        return
    terms = bounty_terms(bounty)
    improvement = verdict_improvement(sub)
    async with store.transaction() as txn:
        await record_funding(txn, bounty["id"])
    left = await _left(store, bounty)
    split = split_payout(pool_msat=terms.pool_msat, left_msat=left, improvement=improvement,
                         target=terms.target_improvement, fee_percent=float(cfg.get("coordinator.fee_percent")),
                         holdback_percent=float(cfg.get("coordinator.holdback_percent")))
    if split.gross_msat > 0:
        await _settle_funding(store, lightning, bounty)
    keysend = await _keysend_ok(lightning)
    b = bounty["id"]
    async with ledger.transition(store, b) as txn:
        if await _allocated(txn, sub["id"]):
            return
        await ledger.post(txn, f"payout:{sub['id']}", [
            ledger.Transfer(ledger.pool(b), ledger.FEES, split.fee_msat, sub["id"]),
            ledger.Transfer(ledger.pool(b), ledger.owed(sub["id"]), split.now_msat, sub["id"]),
            ledger.Transfer(ledger.pool(b), ledger.holdback(b), split.holdback_msat, sub["id"]),
        ], bounty_id=b, memo=f"improvement {improvement:.4%} of target {terms.target_improvement:.4%}")
        await payout_sender.add(txn, key=f"payout:{sub['id']}", bounty_id=b, submission_id=sub["id"],
                                purpose="payout", amount_msat=split.now_msat, destination=sub["payout_destination"],
                                keysend=keysend)
        if split.holdback_msat > 0:
            await stability.schedule(txn, sub["id"], now() + stability.holdback_seconds(cfg, bounty))
        await txn.event("payout.allocated", sub["id"], bounty_id=b, improvement=improvement,
                        gross_msat=split.gross_msat, fee_msat=split.fee_msat, now_msat=split.now_msat,
                        holdback_msat=split.holdback_msat, pool_left_msat=left - split.gross_msat)
    if left - split.gross_msat <= 0 and bounty["status"] == "OPEN":
        await _close(store, b, "the pool is spent")
    if bounty["status"] == "CLOSED" or left - split.gross_msat <= 0:
        await _refund_rest(store, lightning, cfg, b)


# -- stakes ---------------------------------------------------------------------------


async def _resolve_stake(store: Store, lightning: LightningBackend, sub: dict[str, Any], *, forfeit: bool) -> None:
    """Cancel (refund) or settle (forfeit) the stake hold, and book what actually happened."""
    if not sub["stake_payment_hash"]:
        return
    invoice = await store.fetchone("SELECT * FROM invoices WHERE payment_hash = ?", (sub["stake_payment_hash"],))
    if invoice is None:
        return
    state = invoice["status"]
    if state == "ACCEPTED":
        try:
            if forfeit:
                await lightning.settle_hold(invoice["preimage"], payment_hash=invoice["payment_hash"])
                state = "SETTLED"
            else:
                await lightning.cancel_hold(invoice["payment_hash"])
                state = "CANCELED"
        except LightningError as exc:
            try:
                state = (await lightning.lookup_invoice(invoice["payment_hash"])).state.value
            except LightningError:
                log.warning("stake of %s unresolved (%s); retried at the next tick", sub["id"], exc)
                return
    await _book_stake(store, sub, invoice, state)


async def _book_stake(store: Store, sub: dict[str, Any], invoice: dict[str, Any], state: str) -> None:
    b, s = sub["bounty_id"], sub["id"]
    async with ledger.transition(store, b) as txn:
        if state != invoice["status"]:
            await txn.execute("UPDATE invoices SET status = ?, updated_at = ? WHERE payment_hash = ?",
                              (state, now(), invoice["payment_hash"]))
        amount = int(invoice["amount_msat"])
        if state in ("ACCEPTED", "SETTLED") or (state in ("CANCELED", "EXPIRED") and invoice["status"] == "ACCEPTED"):
            await ledger.post(txn, f"stake_in:{s}", [ledger.Transfer(ledger.staker(s), ledger.stake(s), amount, s)],
                              bounty_id=b, memo="stake held")
        if not await ledger.posted(txn, f"stake_in:{s}"):
            return
        if state == "SETTLED" and await ledger.post(
                txn, f"stake_forfeit:{s}", [ledger.Transfer(ledger.stake(s), ledger.pool(b), amount, s)],
                bounty_id=b, memo="stake forfeited: gaming confirmed by the sponsor; it joins the pool"):
            await txn.event("stake.forfeited", s, bounty_id=b, amount_msat=amount)
        elif state in ("CANCELED", "EXPIRED") and await ledger.post(
                txn, f"stake_return:{s}", [ledger.Transfer(ledger.stake(s), ledger.unstaked(s), amount, s)],
                bounty_id=b, memo=f"stake returned ({state.lower()})"):
            await txn.event("stake.refunded", s, bounty_id=b, amount_msat=amount)


async def confirm_gaming(store: Store, lightning: LightningBackend, cfg: Config, submission_id: str,
                         confirmed: bool, note: str = "") -> None:
    """The sponsor's word on a FLAGGED submission: gaming confirmed forfeits the stake, else it is refunded."""
    async with payout_lock(store):
        sub = await _submission(store, submission_id)
        if sub["status"] != "FLAGGED":
            raise Conflict(f"submission {submission_id} is {sub['status']}; only a FLAGGED one awaits the "
                           "sponsor's decision", code="not_flagged")
        async with store.transaction() as txn:
            await txn.event("stake.sponsor_decision", submission_id, bounty_id=sub["bounty_id"],
                            gaming_confirmed=confirmed, note=note)
        await _resolve_stake(store, lightning, sub, forfeit=confirmed)
        if confirmed and await ledger.posted(store, f"stake_forfeit:{submission_id}"):
            bounty = await _bounty(store, sub["bounty_id"])
            if bounty["status"] in ("CLOSED", "SETTLED"):
                await _refund_rest(store, lightning, cfg, bounty["id"])


# -- closing and refunds --------------------------------------------------------------


async def _close(store: Store, bounty_id: str, reason: str) -> None:
    """OPEN -> CLOSED, revealing the salts (the service does the same for deadlines and operators)."""
    async with store.transaction() as txn:
        if await txn.execute("UPDATE bounties SET status = 'CLOSED', updated_at = ? WHERE id = ? AND status = 'OPEN'",
                             (now(), bounty_id)):
            await txn.event("bounty.status", bounty_id, status="CLOSED", reason=reason)
            await txn.execute("UPDATE heldout_commitments SET revealed_at = ? WHERE bounty_id = ? "
                              "AND revealed_at IS NULL", (now(), bounty_id))
            await txn.event("bounty.salt_revealed", bounty_id)
            await txn.execute("UPDATE timers SET done_at = ? WHERE kind = 'bounty_deadline' AND subject_id = ? "
                              "AND done_at IS NULL", (now(), bounty_id))


async def _refund_rest(store: Store, lightning: LightningBackend, cfg: Config, bounty_id: str) -> None:
    """Give the sponsor back what is left in the pool: cancel the hold if never settled, else pay it."""
    bounty = await _bounty(store, bounty_id)
    if bounty["status"] == "CLOSED" and await _judging(store, bounty_id):
        return  # submissions made before the close are still judged and paid first; the next tick retries
    async with store.transaction() as txn:
        await record_funding(txn, bounty_id)
    invoice = await _funding_invoice(store, bounty)
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
            await txn.execute("UPDATE invoices SET status = 'CANCELED', updated_at = ? WHERE payment_hash = ?",
                              (now(), invoice["payment_hash"]))
            amount = min(int(invoice["amount_msat"]), await ledger.balance(txn, ledger.pool(bounty_id)))
            if await ledger.post(txn, f"refund_cancel:{bounty_id}", [
                    ledger.Transfer(ledger.pool(bounty_id), ledger.refund(bounty_id), amount)],
                    bounty_id=bounty_id, memo="funding hold cancelled: the sponsor's payment fails back"):
                await txn.event("refund.cancelled_hold", bounty_id, amount_msat=amount)
    left = await ledger.balance(store, ledger.pool(bounty_id))
    if left <= 0:
        return
    keysend = await _keysend_ok(lightning)
    async with ledger.transition(store, bounty_id) as txn:
        n = int((await txn.fetchone("SELECT COUNT(*) AS n FROM payments WHERE bounty_id = ? AND purpose = 'refund'",
                                    (bounty_id,)))["n"])
        if bounty["funding_mode"] == "self":
            # The pool was a reservation of the operator's own sats: releasing it is the refund.
            await ledger.post(txn, f"refund_release:{bounty_id}:{await _count(txn, 'refund_release:' + bounty_id)}",
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


async def _judging(conn: Store | Txn, bounty_id: str) -> bool:
    """Are submissions of this bounty still waiting for a verdict (or its payout decision)?"""
    row = await conn.fetchone(
        "SELECT 1 FROM submissions s WHERE s.bounty_id = ? AND (s.status IN ('RECEIVED', 'AWAITING_STAKE', 'QUEUED', "
        "'EVALUATING') OR (s.status = 'ACCEPTED' AND NOT EXISTS (SELECT 1 FROM events e WHERE "
        "e.kind = 'payout.allocated' AND e.subject_id = s.id))) LIMIT 1", (bounty_id,))
    return row is not None


async def _count(txn: Txn, txn_prefix: str) -> int:
    row = await txn.fetchone("SELECT COUNT(DISTINCT txn_id) AS n FROM ledger_entries WHERE txn_id LIKE ?",
                             (txn_prefix + ":%",))
    return int(row["n"])


async def _maybe_settle(store: Store, bounty_id: str) -> bool:
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
                or await _judging(txn, bounty_id)):
            return False
        if await txn.execute("UPDATE bounties SET status = 'SETTLED', updated_at = ? WHERE id = ? AND status = 'CLOSED'",
                             (now(), bounty_id)):
            await txn.event("bounty.status", bounty_id, status="SETTLED", **books.as_dict())
            return True
    return False


async def on_bounty_closed(store: Store, lightning: LightningBackend, cfg: Config, bounty_id: str) -> None:
    """After OPEN -> CLOSED: refund the rest to the sponsor; SETTLED once holdbacks are resolved."""
    async with payout_lock(store):
        bounty = await _bounty(store, bounty_id)
        if bounty["status"] != "CLOSED":
            return
        await _refund_rest(store, lightning, cfg, bounty_id)
        await payout_sender.process(store, lightning, cfg)
        await _maybe_settle(store, bounty_id)


# -- claims -----------------------------------------------------------------------------


def _decode(bolt11: str) -> Any:
    import bolt11 as bolt11_lib  # 46 ms; only claims need it

    try:
        return bolt11_lib.decode(bolt11.strip())
    except Exception as exc:  # the library raises several types for malformed strings
        raise Invalid(f"the invoice cannot be decoded as BOLT11 ({exc}); send the invoice string your "
                      "wallet created", code="invalid_invoice") from None


async def _claim(store: Store, lightning: LightningBackend, cfg: Config, rows: list[dict[str, Any]], who: str,
                 bolt11: str) -> dict[str, Any]:
    invoice = _decode(bolt11)
    amount = int(invoice.amount_msat or 0)
    for row in rows:  # the same invoice again: answer with what happened to it
        if row["payment_hash"] == invoice.payment_hash and row["bolt11"] == bolt11.strip():
            return payout_sender.row_view(row)
    owed = [r for r in rows if r["status"] in payout_sender.CLAIMABLE]
    if not owed:
        busy = [r for r in rows if r["status"] in ("PENDING", "UNKNOWN")]
        if busy:
            raise Conflict(f"a payment to {who} is in flight; wait for it before claiming again",
                           code="payment_in_flight")
        raise Conflict(f"nothing is owed to {who} right now", code="nothing_owed")
    match = next((r for r in owed if r["amount_msat"] == amount), None)
    if match is None:
        amounts = ", ".join(f"{r['amount_msat']} msat ({r['purpose']})" for r in owed)
        raise Invalid(f"the invoice is for {amount} msat, but {who} is owed {amounts}; create an invoice for "
                      "exactly one of these amounts", code="wrong_amount", details={"owed": [
                          payout_sender.row_view(r) for r in owed]})
    if invoice.date + (invoice.expiry or 3600) <= now() + 30:
        raise Invalid("the invoice has expired (or expires within 30 s); create a fresh one", code="invoice_expired")
    reason = await ledger.halted_reason(store)
    if reason:
        raise PayoutsHalted(f"payouts are halted ({reason}); your claim was not paid")
    async with store.transaction() as txn:
        await txn.execute("UPDATE payments SET bolt11 = ?, payment_hash = ?, status = 'QUEUED', updated_at = ? "
                          "WHERE idempotency_key = ? AND status IN ('AWAITING_CLAIM', 'QUEUED', 'FAILED')",
                          (bolt11.strip(), invoice.payment_hash, now(), match["idempotency_key"]))
        await txn.event("payment.claimed", match["idempotency_key"], bounty_id=match["bounty_id"],
                        submission_id=match["submission_id"], amount_msat=amount)
    return payout_sender.row_view(await payout_sender.attempt(store, lightning, cfg, match["idempotency_key"]))


async def claim(store: Store, lightning: LightningBackend, cfg: Config, submission_id: str, bolt11: str) -> dict[str, Any]:
    """Pay an agent's BOLT11 invoice for exactly one amount owed to ``submission_id``."""
    async with payout_lock(store):
        await _submission(store, submission_id)
        rows = await store.fetchall("SELECT * FROM payments WHERE submission_id = ? AND purpose IN "
                                    "('payout', 'holdback') ORDER BY created_at", (submission_id,))
        result = await _claim(store, lightning, cfg, rows, f"submission {submission_id}", bolt11)
        return {"submission_id": submission_id, **result}


async def claim_refund(store: Store, lightning: LightningBackend, cfg: Config, bounty_id: str,
                       bolt11: str) -> dict[str, Any]:
    """Pay the sponsor's BOLT11 invoice for exactly one refund owed on ``bounty_id``."""
    async with payout_lock(store):
        await _bounty(store, bounty_id)
        rows = await store.fetchall("SELECT * FROM payments WHERE bounty_id = ? AND purpose = 'refund' "
                                    "ORDER BY created_at", (bounty_id,))
        result = await _claim(store, lightning, cfg, rows, f"the sponsor of {bounty_id}", bolt11)
        await _maybe_settle(store, bounty_id)
        return {"bounty_id": bounty_id, **result}


async def resolve_unknown(store: Store, lightning: LightningBackend, cfg: Config, key: str, *, sent: bool,
                          fee_msat: int = 0) -> dict[str, Any]:
    """An operator's verdict on an UNKNOWN payment after checking the node by hand:
    ``sent`` books it as paid; otherwise it is retried (or waits for a claim)."""
    async with payout_lock(store):
        row = await store.fetchone("SELECT * FROM payments WHERE idempotency_key = ?", (key,))
        if row is None:
            raise NotFound(f"no payment {key!r}", code="unknown_payment")
        if row["status"] != "UNKNOWN":
            raise Conflict(f"payment {key} is {row['status']}, not UNKNOWN; nothing to resolve", code="not_unknown")
        if sent:
            from l402tui.lightning.backend import Payment, PaymentState

            await payout_sender.complete(store, row, Payment(row["payment_hash"] or "", row["amount_msat"], fee_msat,
                                                             PaymentState.COMPLETE))
        else:
            async with store.transaction() as txn:
                await txn.execute("UPDATE payments SET status = 'FAILED', next_attempt_at = ?, updated_at = ? "
                                  "WHERE idempotency_key = ?", (now(), now(), key))
                await txn.event("payment.resolved", key, sent=False)
        return payout_sender.row_view(await store.fetchone("SELECT * FROM payments WHERE idempotency_key = ?", (key,)))


async def payout_summary(store: Store, submission_id: str) -> dict[str, Any]:
    rows = await store.fetchall("SELECT * FROM payments WHERE submission_id = ? ORDER BY created_at", (submission_id,))
    sub = await _submission(store, submission_id)
    return {"submission_id": submission_id, "status": sub["status"],
            "held_back_msat": await ledger.balance(store, ledger.holdback(sub["bounty_id"]),
                                                   submission_id=submission_id),
            "payments": [payout_sender.row_view(r) for r in rows]}


# -- the clock -----------------------------------------------------------------------------


async def tick(store: Store, lightning: LightningBackend, cfg: Config, *, at: float | None = None) -> dict[str, Any]:
    """Catch up on everything: book funding and stakes, reconcile and retry payments,
    advance holdback timers, refund closed bounties and settle them.  Safe to call any time."""
    async with payout_lock(store):
        reason = await ledger.halted_reason(store)
        if reason:
            return {"halted": reason}
        for b in await store.fetchall("SELECT id FROM bounties WHERE status IN ('OPEN', 'CLOSED')"):
            if not await ledger.posted(store, f"fund:{b['id']}"):  # no write lock taken when there is nothing to do
                async with ledger.transition(store, b["id"]) as txn:
                    await record_funding(txn, b["id"])
        for sub in await store.fetchall(
                "SELECT s.* FROM submissions s JOIN invoices i ON i.payment_hash = s.stake_payment_hash "
                "WHERE i.status = 'ACCEPTED' OR (i.status IN ('SETTLED', 'CANCELED', 'EXPIRED') AND NOT EXISTS "
                "(SELECT 1 FROM ledger_entries WHERE txn_id IN ('stake_forfeit:' || s.id, 'stake_return:' || s.id)))"):
            if sub["status"] in ("REJECTED", *PAYABLE):
                await _resolve_stake(store, lightning, sub, forfeit=False)
            else:
                invoice = await store.fetchone("SELECT * FROM invoices WHERE payment_hash = ?",
                                               (sub["stake_payment_hash"],))
                await _book_stake(store, sub, invoice, invoice["status"])
        for sub in await store.fetchall("SELECT id FROM submissions WHERE status = 'ACCEPTED'"):
            if not await _allocated(store, sub["id"]):
                try:
                    await _allocate(store, lightning, cfg, await _submission(store, sub["id"]))
                except (FundingUnavailable, Unavailable) as exc:
                    log.warning("payout of %s waits: %s", sub["id"], exc)
        sends = await payout_sender.process(store, lightning, cfg, at=at)
        decided = await stability.run_due(store, cfg, at=at, keysend=await _keysend_ok(lightning))
        if decided:
            sends += await payout_sender.process(store, lightning, cfg, at=at)
        settled = 0
        for b in await store.fetchall(
                "SELECT b.id, b.status FROM bounties b WHERE b.status = 'CLOSED' OR (b.status = 'CANCELED' AND "
                "(SELECT COALESCE(SUM(amount_msat), 0) FROM ledger_entries WHERE account = 'pool:' || b.id) > 0)"):
            await _refund_rest(store, lightning, cfg, b["id"])
            if b["status"] == "CLOSED":
                settled += await _maybe_settle(store, b["id"])
        if settled:
            await payout_sender.process(store, lightning, cfg, at=at)
        return {"sends": sends, "holdbacks_decided": decided, "settled": settled}
