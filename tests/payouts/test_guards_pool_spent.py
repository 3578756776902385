"""A payout that takes exactly what is left of the pool closes the bounty (nothing is left to
win); one that leaves a msat does not."""

from __future__ import annotations

from payouts_world import World

from l402tui.coordinator import payouts


async def _status(world: World, b: str) -> str:
    return (await world.store.fetchone("SELECT status FROM bounties WHERE id = ?", (b,)))["status"]


async def test_a_payout_of_exactly_the_whole_pool_closes_the_bounty(world: World):
    b = await world.bounty(target=0.05)
    s = await world.submit(b, "agent-1")
    await world.verdict(s, "ACCEPTED", 0.05, error=0.95)  # the whole target: the whole pool
    await payouts.on_accepted(world.store, world.coordinator, world.cfg, s)
    books = await world.books(b)
    assert books.pool_left == 0 and books.owed + books.held_back + books.fees == 100_000_000
    assert await _status(world, b) in ("CLOSED", "SETTLED")


async def test_a_payout_leaving_part_of_the_pool_keeps_the_bounty_open(world: World):
    b = await world.bounty(target=0.05)
    s = await world.submit(b, "agent-1")
    await world.verdict(s, "ACCEPTED", 0.04, error=0.96)
    await payouts.on_accepted(world.store, world.coordinator, world.cfg, s)
    assert (await world.books(b)).pool_left > 0
    assert await _status(world, b) == "OPEN"
