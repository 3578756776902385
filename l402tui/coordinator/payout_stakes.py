"""Stakes: what a submission's stake becomes once its verdict is known.

- ACCEPTED (and every later payout state): refunded in full; the hold is cancelled.
- REJECTED: ``reward.rejected_stake_keep_percent`` of it (bounty.toml, default 50) is
  kept into the bounty's pool; it pays for the held-out evaluation and rations probing
  of the held-out set.  The rest is owed back to the agent.
- FLAGGED: waits for the sponsor.  Gaming confirmed keeps it all (into the pool); not
  confirmed refunds it all (the flag was the coordinator's mistake, not the agent's).

A hold invoice is all-or-nothing: keeping part means settling the hold and owing the
rest back as a ``stake_refund:<submission>`` payment, sent by keysend or claimed with an
invoice through ``/claim`` like a payout (``payout_sender``).  The node acts first
(settle or cancel), then one ledger transition books what it did: the invoice's state,
the stake, the part kept, the part owed back and its payment row.  A crash in between
leaves the invoice row ACCEPTED; the next tick asks the node again (a second settle is
answered by a lookup) and books it then, once: every booking has a deterministic id.
"""

from __future__ import annotations

import json
import logging
from decimal import Decimal
from typing import Any

from l402tui.config import Config
from l402tui.coordinator import ledger, payout_sender
from l402tui.coordinator.errors import Conflict
from l402tui.coordinator.payout_close import refund_rest
from l402tui.coordinator.payout_funding import keysend_ok, load_bounty, load_submission
from l402tui.coordinator.payout_math import bounty_terms
from l402tui.coordinator.payout_sender import payout_lock
from l402tui.domain import PAYABLE
from l402tui.lightning.backend import LightningBackend, LightningError
from l402tui.store.db import Store, Txn, now

log = logging.getLogger("l402tui.payouts")

RESOLVED_TXNS = ("stake_forfeit", "stake_keep", "stake_return")  # one of them per stake, ever


async def keep_percent(conn: Store | Txn, sub: dict[str, Any]) -> float | None:
    """The share of the stake the verdict keeps (percent), or None while it is undecided."""
    if sub["status"] in PAYABLE:
        return 0.0
    if sub["status"] == "REJECTED":
        return bounty_terms(await load_bounty(conn, sub["bounty_id"])).rejected_stake_keep_percent
    if sub["status"] == "FLAGGED":
        decision = await conn.fetchone("SELECT payload_json FROM events WHERE kind = 'stake.sponsor_decision' "
                                       "AND subject_id = ? ORDER BY id LIMIT 1", (sub["id"],))
        if decision is None:
            return None
        return 100.0 if json.loads(decision["payload_json"]).get("gaming_confirmed") else 0.0
    return None  # not judged yet


def kept_msat(amount_msat: int, percent: float) -> int:
    """The part kept, rounded down: the rest of the msat belongs to the agent who staked it."""
    return min(amount_msat, int(Decimal(amount_msat) * Decimal(str(percent)) / 100))


async def resolve_stake(store: Store, lightning: LightningBackend, sub: dict[str, Any]) -> None:
    """Apply the stake rule to the submission as it stands now (idempotent; hold the payout lock)."""
    if not sub["stake_payment_hash"]:
        return
    invoice = await store.fetchone("SELECT * FROM invoices WHERE payment_hash = ?", (sub["stake_payment_hash"],))
    if invoice is None:
        return
    percent = await keep_percent(store, sub)
    state = invoice["status"]
    if state == "ACCEPTED" and percent is not None:
        try:
            if kept_msat(int(invoice["amount_msat"]), percent) > 0:
                state = (await lightning.settle_hold(invoice["preimage"],
                                                     payment_hash=invoice["payment_hash"])).state.value
            else:
                state = (await lightning.cancel_hold(invoice["payment_hash"])).state.value
        except LightningError as exc:
            # Settled (or cancelled) already, by us before a crash or by the node at expiry.
            try:
                state = (await lightning.lookup_invoice(invoice["payment_hash"])).state.value
            except LightningError:
                log.warning("stake of %s unresolved (%s); retried at the next tick", sub["id"], exc)
                return
    await book_stake(store, lightning, sub, invoice, state, percent)


async def book_stake(store: Store, lightning: LightningBackend, sub: dict[str, Any], invoice: dict[str, Any],
                     state: str, percent: float | None) -> None:
    """Book what the node did with the stake hold, in one transition."""
    b, s = sub["bounty_id"], sub["id"]
    keysend = await keysend_ok(lightning)
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
        for kind in RESOLVED_TXNS:
            if await ledger.posted(txn, f"{kind}:{s}"):
                return
        if state == "SETTLED":
            # Settled without a decision on record only if someone settled it by hand: gaming is
            # the one reason this coordinator settles a stake it has not decided on.
            await _book_settled(txn, sub, amount, 100.0 if percent is None else percent, keysend)
        elif state in ("CANCELED", "EXPIRED") and await ledger.post(
                txn, f"stake_return:{s}", [ledger.Transfer(ledger.stake(s), ledger.unstaked(s), amount, s)],
                bounty_id=b, memo=f"stake returned ({state.lower()})"):
            await txn.event("stake.refunded", s, bounty_id=b, amount_msat=amount)


async def _book_settled(txn: Txn, sub: dict[str, Any], amount: int, percent: float, keysend: bool) -> None:
    b, s = sub["bounty_id"], sub["id"]
    keep = kept_msat(amount, percent)
    if sub["status"] == "FLAGGED" and keep == amount:
        await ledger.post(txn, f"stake_forfeit:{s}", [ledger.Transfer(ledger.stake(s), ledger.pool(b), amount, s)],
                          bounty_id=b, memo="stake forfeited: gaming confirmed by the sponsor; it joins the pool")
        await txn.event("stake.forfeited", s, bounty_id=b, amount_msat=amount)
        return
    back = amount - keep
    await ledger.post(txn, f"stake_keep:{s}", [
        ledger.Transfer(ledger.stake(s), ledger.pool(b), keep, s),
        ledger.Transfer(ledger.stake(s), ledger.stake_owed(s), back, s),
    ], bounty_id=b, memo=f"{sub['status']}: {percent:g} % of the stake kept into the pool, the rest owed back")
    await payout_sender.add(txn, key=f"stake_refund:{s}", bounty_id=b, submission_id=s, purpose="stake_refund",
                            amount_msat=back, destination=sub["payout_destination"], keysend=keysend)
    await txn.event("stake.kept", s, bounty_id=b, status=sub["status"], percent=percent, kept_msat=keep,
                    refund_msat=back, action=("the agent is paid the rest by keysend or claims it with a BOLT11 "
                                              "invoice for exactly that amount") if back else "")


async def after_resolve(store: Store, lightning: LightningBackend, cfg: Config, sub: dict[str, Any]) -> None:
    """Push a stake refund that can go by keysend, and refund a closed bounty's pool that a kept
    stake just joined.  Hold the payout lock."""
    s = sub["id"]
    row = await store.fetchone("SELECT status FROM payments WHERE idempotency_key = ?", (f"stake_refund:{s}",))
    if row is not None and row["status"] == "QUEUED":
        await payout_sender.attempt(store, lightning, cfg, f"stake_refund:{s}")
    if await ledger.posted(store, f"stake_keep:{s}") or await ledger.posted(store, f"stake_forfeit:{s}"):
        bounty = await load_bounty(store, sub["bounty_id"])
        if bounty["status"] in ("CLOSED", "SETTLED"):
            await refund_rest(store, lightning, cfg, bounty["id"])


async def confirm_gaming(store: Store, lightning: LightningBackend, cfg: Config, submission_id: str,
                         confirmed: bool, note: str = "") -> None:
    """The sponsor's word on a FLAGGED submission: gaming confirmed keeps the stake, else it is refunded."""
    async with payout_lock(store):
        sub = await load_submission(store, submission_id)
        if sub["status"] != "FLAGGED":
            raise Conflict(f"submission {submission_id} is {sub['status']}; only a FLAGGED one awaits the "
                           "sponsor's decision", code="not_flagged")
        async with store.transaction() as txn:
            # One decision per submission.  The same decision again is a retry (after a
            # crash before the stake was resolved) and finishes the work; the opposite
            # one would contradict a stake that may already be settled or refunded.
            earlier = await txn.fetchone("SELECT payload_json FROM events WHERE kind = 'stake.sponsor_decision' "
                                         "AND subject_id = ? ORDER BY id LIMIT 1", (submission_id,))
            if earlier is None:
                await txn.event("stake.sponsor_decision", submission_id, bounty_id=sub["bounty_id"],
                                gaming_confirmed=confirmed, note=note)
            elif bool(json.loads(earlier["payload_json"]).get("gaming_confirmed")) != confirmed:
                raise Conflict(f"submission {submission_id} was already reviewed (gaming "
                               f"{'confirmed' if not confirmed else 'not confirmed'}); the decision stands",
                               code="already_reviewed")
        await resolve_stake(store, lightning, sub)
        await after_resolve(store, lightning, cfg, sub)
