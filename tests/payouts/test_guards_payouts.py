"""The payouts engine's entry guards, fed the submissions and bounties they exist to refuse."""

from __future__ import annotations

import pytest
from payouts_world import World

from l402tui.coordinator import ledger, payouts
from l402tui.coordinator.errors import Conflict


@pytest.mark.parametrize("status", ["REJECTED", "FLAGGED", "QUEUED", "EVALUATING"])
async def test_a_submission_that_was_not_accepted_is_never_paid(world: World, status: str):
    """Its verdict carries an improvement (a flagged one can score well): it still earns nothing."""
    b = await world.bounty()
    s = await world.submit(b, "agent-1", keysend=True)
    await world.verdict(s, status, 0.02)
    with pytest.raises(Conflict) as err:
        await payouts.on_accepted(world.store, world.coordinator, world.cfg, s)
    assert err.value.code == "not_accepted"
    await payouts.tick(world.store, world.coordinator, world.cfg)
    assert await world.store.fetchall("SELECT * FROM payments WHERE submission_id = ?", (s,)) == []
    assert not await ledger.posted(world.store, f"payout:{s}")
    assert await world.received("agent-1") == 0
    funding = await world.store.fetchone("SELECT i.status FROM invoices i JOIN bounties b "
                                         "ON b.funding_payment_hash = i.payment_hash WHERE b.id = ?", (b,))
    assert funding["status"] == "ACCEPTED"  # the sponsor's hold is not even settled


async def test_an_accepted_submission_of_a_cancelled_bounty_is_not_allocated(world: World):
    """The verdict landed after the bounty was cancelled (its hold went back to the sponsor)."""
    b = await world.bounty()
    s = await world.submit(b, "agent-1", keysend=True)
    bounty = await world.store.fetchone("SELECT * FROM bounties WHERE id = ?", (b,))
    await world.coordinator.cancel_hold(bounty["funding_payment_hash"])
    async with world.store.transaction() as txn:
        await txn.execute("UPDATE bounties SET status = 'CANCELED' WHERE id = ?", (b,))
        await txn.execute("UPDATE invoices SET status = 'CANCELED' WHERE payment_hash = ?",
                          (bounty["funding_payment_hash"],))
    await world.verdict(s, "ACCEPTED", 0.02)
    await payouts.on_accepted(world.store, world.coordinator, world.cfg, s)
    await payouts.tick(world.store, world.coordinator, world.cfg)
    impossible = await world.store.fetchall("SELECT * FROM events WHERE kind = 'payout.impossible' AND subject_id = ?",
                                            (s,))
    assert impossible and "CANCELED" in impossible[0]["payload_json"]
    assert await world.store.fetchall("SELECT * FROM events WHERE kind = 'payout.allocated' AND subject_id = ?",
                                      (s,)) == []
    assert await world.store.fetchall("SELECT * FROM payments WHERE bounty_id = ?", (b,)) == []
    assert await ledger.entries(world.store, bounty_id=b) == []


async def test_nothing_is_allocated_from_a_funding_hold_that_is_not_settled(world: World, monkeypatch):
    """The settle step did not happen (a crash, a race with another writer): the sponsor could
    still get the hold cancelled, so the payout waits instead of owing money the pool lacks."""
    from l402tui.coordinator import payout_funding
    from l402tui.coordinator.errors import Unavailable

    b = await world.bounty()
    s = await world.submit(b, "agent-1", keysend=True)
    await world.verdict(s, "ACCEPTED", 0.02)

    async def not_settled(*args, **kwargs):
        return None

    with monkeypatch.context() as m:
        m.setattr(payouts, "settle_funding", not_settled)
        m.setattr(payout_funding, "settle_funding", not_settled)
        with pytest.raises(Unavailable, match="not settled"):
            await payouts.on_accepted(world.store, world.coordinator, world.cfg, s)
    assert not await ledger.posted(world.store, f"payout:{s}")
    assert await world.store.fetchall("SELECT * FROM payments WHERE submission_id = ?", (s,)) == []
    summary = await payouts.on_accepted(world.store, world.coordinator, world.cfg, s)  # the next try settles
    assert summary["payments"][0]["status"] == "COMPLETE"


async def test_a_stake_refund_is_not_pushed_while_payouts_are_halted(world: World):
    """on_verdict resolves the stake (the node cancels or settles it) but the keysend of the part
    owed back waits for an operator like every other send."""
    b = await world.bounty(stake_sats=1_000)
    s = await world.submit(b, "agent-1", keysend=True, stake_sats=1_000)
    await world.verdict(s, "REJECTED")
    before = await world.balance("agent-1")
    await ledger.halt(world.store, "an operator is looking")
    with pytest.raises(payouts.PayoutsHalted):
        await payouts.on_verdict(world.store, world.coordinator, world.cfg, s)
    row = await world.store.fetchone("SELECT * FROM payments WHERE idempotency_key = ?", (f"stake_refund:{s}",))
    assert row["status"] == "QUEUED" and row["attempts"] == 0
    assert await world.balance("agent-1") == before
