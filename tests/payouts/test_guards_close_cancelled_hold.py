"""The rest of a closed bounty whose funding hold the node already cancelled (its HTLC neared
expiry): the sponsor's payment failed back on its own, so the refund is booked, never paid a
second time by keysend or claim."""

from __future__ import annotations

from payouts_world import World

from l402tui.coordinator import ledger, lifecycle, payout_close
from l402tui.coordinator.payout_funding import record_funding


async def test_a_hold_the_node_cancelled_is_booked_as_the_refund_and_nothing_is_paid(world: World):
    b = await world.bounty()
    async with ledger.transition(world.store, b) as txn:
        assert await record_funding(txn, b)
    bounty = await world.store.fetchone("SELECT * FROM bounties WHERE id = ?", (b,))
    await world.coordinator.cancel_hold(bounty["funding_payment_hash"])  # the node, at expiry
    async with world.store.transaction() as txn:  # and the invoice sync saw it
        await txn.execute("UPDATE invoices SET status = 'CANCELED' WHERE payment_hash = ?",
                          (bounty["funding_payment_hash"],))
        assert await lifecycle.close_bounty(txn, b, "the deadline passed")
    sponsor_before = await world.balance("sponsor")
    await payout_close.refund_rest(world.store, world.coordinator, world.cfg, b)
    books = await world.books(b)
    assert books.pool_left == 0 and books.refunded == books.funded and books.refund_pending == 0
    assert books.problems == []
    assert await world.store.scalar("SELECT COUNT(*) FROM payments WHERE bounty_id = ? AND purpose = 'refund'",
                                    (b,)) == 0
    assert await world.balance("sponsor") == sponsor_before
