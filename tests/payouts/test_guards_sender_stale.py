"""The payout sender fed stale inputs: a row read before it completed, a payment recorded twice.
Neither may change what is already decided, nor cause a second send."""

from __future__ import annotations

from payouts_world import World

from l402tui.coordinator import payout_sender, payouts
from l402tui.lightning.backend import Payment, PaymentState


async def _row(world: World, key: str) -> dict:
    return await world.store.fetchone("SELECT * FROM payments WHERE idempotency_key = ?", (key,))


async def test_a_stale_failure_report_for_a_completed_payout_changes_nothing(world: World, monkeypatch):
    """A reconcile working from a copy of the row read while it was PENDING, answered FAILED by
    the node (an earlier attempt's record): the row stays COMPLETE and nothing is sent again."""
    b = await world.bounty()
    s = await world.submit(b, "agent-2", keysend=True)
    await world.verdict(s, "ACCEPTED", 0.02)
    await payouts.on_accepted(world.store, world.coordinator, world.cfg, s)
    done = await _row(world, f"payout:{s}")
    assert done["status"] == "COMPLETE" and await world.received("agent-2") == 29_600_000
    stale = {**done, "status": "PENDING"}

    async def failed(payment_hash):
        return Payment(payment_hash, done["amount_msat"], 0, PaymentState.FAILED, error="an old attempt failed")

    monkeypatch.setattr(world.coordinator, "lookup_payment", failed)
    async with payout_sender.payout_lock(world.store):
        await payout_sender.reconcile(world.store, world.coordinator, world.cfg, stale)
    monkeypatch.undo()
    assert (await _row(world, f"payout:{s}"))["status"] == "COMPLETE"
    async with payout_sender.payout_lock(world.store):  # every retry due, however long its backoff
        await payout_sender.process(world.store, world.coordinator, world.cfg, at=done["updated_at"] + 10 ** 6)
    assert await world.received("agent-2") == 29_600_000  # once
    assert (await world.books(b)).problems == []


async def test_recording_an_amount_owed_twice_keeps_the_first_record(world: World):
    """add() is idempotent by key: a second call (a retried allocation) neither raises nor
    changes the row."""
    b = await world.bounty()
    s = await world.submit(b, "agent-1")
    for amount in (5_000, 7_000):
        async with world.store.transaction() as txn:
            await payout_sender.add(txn, key=f"payout:{s}", bounty_id=b, submission_id=s, purpose="payout",
                                    amount_msat=amount, destination=None, keysend=False)
    row = await _row(world, f"payout:{s}")
    assert row["amount_msat"] == 5_000 and row["status"] == "AWAITING_CLAIM"
    assert await world.store.scalar("SELECT COUNT(*) FROM payments WHERE idempotency_key = ?", (f"payout:{s}",)) == 1
