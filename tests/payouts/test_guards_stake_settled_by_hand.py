"""A stake hold settled by hand (by the operator on the node) before any decision on record:
gaming is the one reason the coordinator settles an undecided stake, so all of it is kept
into the pool and nothing is owed back."""

from __future__ import annotations

from payouts_world import World

from l402tui.coordinator import payout_sender, payout_stakes


async def test_an_undecided_stake_settled_by_hand_is_kept_whole(world: World):
    b = await world.bounty(stake_sats=1_000)
    s = await world.submit(b, "agent-1", stake_sats=1_000)
    await world.verdict(s, "FLAGGED")  # the sponsor has not reviewed it
    sub = await world.store.fetchone("SELECT * FROM submissions WHERE id = ?", (s,))
    inv = await world.store.fetchone("SELECT * FROM invoices WHERE payment_hash = ?", (sub["stake_payment_hash"],))
    await world.coordinator.settle_hold(inv["preimage"], payment_hash=inv["payment_hash"])
    async with world.store.transaction() as txn:  # the invoice sync saw it
        await txn.execute("UPDATE invoices SET status = 'SETTLED' WHERE payment_hash = ?", (inv["payment_hash"],))
    async with payout_sender.payout_lock(world.store):
        await payout_stakes.resolve_stake(world.store, world.coordinator, sub)
    books = await world.books(b)
    assert books.stakes_in == 1_000_000 and books.stakes_kept == 1_000_000
    assert books.stakes_owed == 0 and books.stakes_returned == 0 and books.problems == []
    assert await world.store.scalar("SELECT COUNT(*) FROM payments WHERE purpose = 'stake_refund' "
                                    "AND amount_msat > 0") == 0
