"""CLOSED -> SETTLED never while the pool still holds money: fed a closed bounty whose rest
has not been refunded yet (nothing else outstanding)."""

from __future__ import annotations

from payouts_world import World

from l402tui.coordinator import ledger, lifecycle, payout_close
from l402tui.coordinator.payout_funding import record_funding


async def test_a_closed_bounty_with_money_left_in_the_pool_is_not_settled(world: World):
    b = await world.bounty()
    async with ledger.transition(world.store, b) as txn:
        assert await record_funding(txn, b)
    async with world.store.transaction() as txn:
        assert await lifecycle.close_bounty(txn, b, "test")
    books = await world.books(b)
    assert books.pool_left > 0 and books.held_back == 0 and books.stakes_held == 0
    assert not await payout_close.maybe_settle(world.store, b)
    assert (await world.store.fetchone("SELECT status FROM bounties WHERE id = ?", (b,)))["status"] == "CLOSED"
