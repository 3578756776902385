"""Money out of a bounty: payouts, stakes, refunds and the close.

The payouts engine of the coordinator service: the service (``service.py`` and
``service_payouts.py``) calls these after its own transitions commit, and is the only
caller outside the payouts modules; each is idempotent, so a restart simply calls it again.

- :func:`on_verdict` — refund the submission's stake, or wait for the sponsor if flagged.
- :func:`on_accepted` — settle the funding hold (first payout), allocate
  ``pool × (I − L) / target`` (``I`` the improvement over the baseline, ``L`` the bounty's
  paid level; see ``payout_math``), minus the fee: 80 % owed now, 20 % held back until
  the stability re-evaluation; push it by keysend or wait for ``/claim``.
- :func:`on_bounty_closed` — refund what is left to the sponsor; SETTLED when the
  holdbacks are resolved.
- :func:`claim` / :func:`claim_refund` — pay an invoice for exactly an amount owed.
- :func:`confirm_gaming` — the sponsor's decision on a flagged submission's stake.
- :func:`tick` — retries, reconciliation after a crash, holdback timers, closing.

Every allocation is posted to the ledger in the transaction that records it, and the
bounty's books are checked before that transaction commits (``ledger.transition``).
The parts: ``payout_math`` (the rule), ``payout_funding`` (the sponsor's hold),
``payout_sender`` (sends and claims that never pay twice), ``payout_stakes``,
``payout_close`` (refunds, SETTLED) and ``stability`` (the 20 %).
"""

from __future__ import annotations

import logging
from typing import Any

from l402tui.config import Config
from l402tui.coordinator import ledger, lifecycle, payout_sender, stability
from l402tui.coordinator.errors import Conflict, Invalid, NotFound, Unavailable
from l402tui.coordinator.payout_close import maybe_settle, on_bounty_closed, refund_rest
from l402tui.coordinator.payout_funding import (FundingUnavailable, funding_invoice, keysend_ok, left_msat,
                                                load_bounty, load_submission, pool_left, record_funding,
                                                settle_funding)
from l402tui.coordinator.payout_levels import paid_level
from l402tui.coordinator.payout_math import (PayoutSplit, PayoutTermsError, bounty_terms, step_split,
                                             verdict_improvement, verdict_level)
from l402tui.coordinator.payout_sender import PayoutsHalted, payout_lock
from l402tui.coordinator.payout_stakes import PAYABLE, after_resolve, confirm_gaming, resolve_stake
from l402tui.lightning.backend import LightningBackend
from l402tui.store.db import Store, Txn, now

log = logging.getLogger("l402tui.payouts")

__all__ = ["on_verdict", "on_accepted", "on_bounty_closed", "claim", "claim_refund", "confirm_gaming", "tick",
           "record_funding", "pool_left", "payout_summary", "resolve_unknown", "PayoutsHalted", "FundingUnavailable"]


# -- verdicts and payouts ---------------------------------------------------------------


async def on_verdict(store: Store, lightning: LightningBackend, cfg: Config, submission_id: str) -> None:
    """Resolve the stake after a verdict (``payout_stakes``): ACCEPTED refunds it, REJECTED keeps
    the bounty's share of it, FLAGGED waits for the sponsor."""
    async with payout_lock(store):
        sub = await load_submission(store, submission_id)
        if sub["status"] == "FLAGGED":
            async with store.transaction() as txn:
                if sub["stake_payment_hash"] and not await txn.fetchone(
                        "SELECT 1 FROM events WHERE kind = 'stake.awaiting_sponsor' AND subject_id = ?",
                        (submission_id,)):
                    await txn.event("stake.awaiting_sponsor", submission_id, bounty_id=sub["bounty_id"],
                                    action="the sponsor confirms gaming (stake forfeited) or not (refunded)")
            return
        if sub["status"] in ("REJECTED", *PAYABLE):
            await resolve_stake(store, lightning, sub)
            await after_resolve(store, lightning, cfg, sub)


async def on_accepted(store: Store, lightning: LightningBackend, cfg: Config, submission_id: str) -> dict[str, Any]:
    """Allocate and start paying an accepted submission's payout (idempotent)."""
    async with payout_lock(store):
        reason = await ledger.halted_reason(store)
        if reason:
            raise PayoutsHalted(f"payouts are halted ({reason}); submission {submission_id} waits")
        sub = await load_submission(store, submission_id)
        if sub["status"] not in PAYABLE:
            raise Conflict(f"submission {submission_id} is {sub['status']}, not ACCEPTED; nothing to pay",
                           code="not_accepted")
        if not await _allocated(store, submission_id):
            await _allocate(store, lightning, cfg, sub)
        await resolve_stake(store, lightning, await load_submission(store, submission_id))
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
    bounty = await load_bounty(store, sub["bounty_id"])
    if bounty["status"] not in ("OPEN", "CLOSED"):
        async with store.transaction() as txn:
            await txn.event("payout.impossible", sub["id"], bounty_id=bounty["id"],
                            reason=f"the bounty is {bounty['status']}")
        return
    terms = bounty_terms(bounty)
    level = verdict_level(sub)
    fee_percent = float(cfg.get("coordinator.fee_percent"))
    holdback_percent = float(cfg.get("coordinator.holdback_percent"))

    async def decide(conn: Store | Txn) -> tuple[float, int, PayoutSplit]:
        before, left = await paid_level(conn, bounty["id"]), await left_msat(conn, bounty)
        return before, left, step_split(pool_msat=terms.pool_msat, left_msat=left, level_before=before, level=level,
                                        target=terms.target_improvement, fee_percent=fee_percent,
                                        holdback_percent=holdback_percent)

    async with store.transaction() as txn:
        await record_funding(txn, bounty["id"])
    if (await decide(store))[2].gross_msat > 0:
        await settle_funding(store, lightning, bounty)
    keysend = await keysend_ok(lightning)
    b = bounty["id"]
    async with ledger.transition(store, b) as txn:
        if await _allocated(txn, sub["id"]):
            return
        before, left, split = await decide(txn)  # decided again inside the transaction that books it
        funding = await funding_invoice(txn, bounty)
        if split.gross_msat > 0 and funding is not None and funding["status"] != "SETTLED":
            raise Unavailable(f"the funding hold of {b} is not settled yet; the payout of {sub['id']} is retried")
        await ledger.post(txn, f"payout:{sub['id']}", [
            ledger.Transfer(ledger.pool(b), ledger.FEES, split.fee_msat, sub["id"]),
            ledger.Transfer(ledger.pool(b), ledger.owed(sub["id"]), split.now_msat, sub["id"]),
            ledger.Transfer(ledger.pool(b), ledger.holdback(b), split.holdback_msat, sub["id"]),
        ], bounty_id=b, memo=f"improvement over the baseline {before:.4%} -> {level:.4%} of target "
                             f"{terms.target_improvement:.4%}")
        await payout_sender.add(txn, key=f"payout:{sub['id']}", bounty_id=b, submission_id=sub["id"],
                                purpose="payout", amount_msat=split.now_msat, destination=sub["payout_destination"],
                                keysend=keysend)
        if split.holdback_msat > 0:
            await stability.schedule(txn, sub["id"], now() + stability.holdback_seconds(cfg, bounty))
        extra = {}
        if split.gross_msat == 0:
            extra["reason"] = ("the pool is spent; nothing is left to pay" if level > before and left <= 0 else
                               f"its improvement over the baseline ({level:.4%}) does not exceed what this bounty "
                               f"has already paid for ({before:.4%})" if level <= before else
                               "the improvement is too small to be worth a whole msat")
        await txn.event("payout.allocated", sub["id"], bounty_id=b, improvement=verdict_improvement(sub),
                        improvement_vs_baseline=level, level_before=before, paid_level=max(before, level),
                        gross_msat=split.gross_msat, fee_msat=split.fee_msat, now_msat=split.now_msat,
                        holdback_msat=split.holdback_msat, pool_left_msat=left - split.gross_msat, **extra)
    if left - split.gross_msat <= 0 and bounty["status"] == "OPEN":
        async with store.transaction() as txn:
            await lifecycle.close_bounty(txn, b, "the pool is spent")
    if bounty["status"] == "CLOSED" or left - split.gross_msat <= 0:
        await refund_rest(store, lightning, cfg, b)


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
    """Pay an agent's BOLT11 invoice for exactly one amount owed to ``submission_id``
    (its payout, its released holdback, or the part of its stake owed back)."""
    async with payout_lock(store):
        await load_submission(store, submission_id)
        rows = await store.fetchall("SELECT * FROM payments WHERE submission_id = ? AND purpose IN "
                                    "('payout', 'holdback', 'stake_refund') ORDER BY created_at", (submission_id,))
        result = await _claim(store, lightning, cfg, rows, f"submission {submission_id}", bolt11)
        return {"submission_id": submission_id, **result}


async def claim_refund(store: Store, lightning: LightningBackend, cfg: Config, bounty_id: str,
                       bolt11: str) -> dict[str, Any]:
    """Pay the sponsor's BOLT11 invoice for exactly one refund owed on ``bounty_id``."""
    async with payout_lock(store):
        await load_bounty(store, bounty_id)
        rows = await store.fetchall("SELECT * FROM payments WHERE bounty_id = ? AND purpose = 'refund' "
                                    "ORDER BY created_at", (bounty_id,))
        result = await _claim(store, lightning, cfg, rows, f"the sponsor of {bounty_id}", bolt11)
        await maybe_settle(store, bounty_id)
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
    sub = await load_submission(store, submission_id)
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
                "(SELECT 1 FROM ledger_entries WHERE txn_id IN ('stake_forfeit:' || s.id, 'stake_keep:' || s.id, "
                "'stake_return:' || s.id)))"):
            try:  # decided stakes are settled or cancelled; undecided ones are only booked as held
                await resolve_stake(store, lightning, sub)
            except PayoutTermsError as exc:
                log.warning("stake of %s waits: %s", sub["id"], exc)
        for sub in await store.fetchall("SELECT id FROM submissions WHERE status = 'ACCEPTED'"):
            if not await _allocated(store, sub["id"]):
                try:
                    await _allocate(store, lightning, cfg, await load_submission(store, sub["id"]))
                except (FundingUnavailable, Unavailable, PayoutTermsError) as exc:
                    log.warning("payout of %s waits: %s", sub["id"], exc)  # one bad row must not stop the rest
        sends = await payout_sender.process(store, lightning, cfg, at=at)
        decided = await stability.run_due(store, cfg, at=at, keysend=await keysend_ok(lightning))
        if decided:
            sends += await payout_sender.process(store, lightning, cfg, at=at)
        settled = 0
        for b in await store.fetchall(
                "SELECT b.id, b.status FROM bounties b WHERE b.status = 'CLOSED' OR (b.status = 'CANCELED' AND "
                "(SELECT COALESCE(SUM(amount_msat), 0) FROM ledger_entries WHERE account = 'pool:' || b.id) > 0)"):
            await refund_rest(store, lightning, cfg, b["id"])
            if b["status"] == "CLOSED":
                settled += await maybe_settle(store, b["id"])
        if settled:
            await payout_sender.process(store, lightning, cfg, at=at)
        return {"sends": sends, "holdbacks_decided": decided, "settled": settled}
