"""Stakes: refunded (hold cancelled) after the verdict, unless the submission was flagged
and the sponsor confirms gaming: then the hold is settled and the stake joins the pool."""

from __future__ import annotations

import json
import logging
from typing import Any

from l402tui.config import Config
from l402tui.coordinator import ledger
from l402tui.coordinator.errors import Conflict
from l402tui.coordinator.payout_close import refund_rest
from l402tui.coordinator.payout_funding import load_bounty, load_submission
from l402tui.coordinator.payout_sender import payout_lock
from l402tui.lightning.backend import LightningBackend, LightningError
from l402tui.store.db import Store, now

log = logging.getLogger("l402tui.payouts")


async def resolve_stake(store: Store, lightning: LightningBackend, sub: dict[str, Any], *, forfeit: bool) -> None:
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
    await book_stake(store, sub, invoice, state)


async def book_stake(store: Store, sub: dict[str, Any], invoice: dict[str, Any], state: str) -> None:
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
        await resolve_stake(store, lightning, sub, forfeit=confirmed)
        if confirmed and await ledger.posted(store, f"stake_forfeit:{submission_id}"):
            bounty = await load_bounty(store, sub["bounty_id"])
            if bounty["status"] in ("CLOSED", "SETTLED"):
                await refund_rest(store, lightning, cfg, bounty["id"])
