"""A closed bounty's rest goes back to the sponsor only once every submission made before the
close is decided, its payout included: fed an ACCEPTED submission whose payout is not yet
allocated (payouts were halted, or its allocation is retried) when the close step runs."""

from __future__ import annotations

from payouts_world import World

from l402tui.coordinator import lifecycle, payout_close, payouts


async def test_the_rest_is_not_refunded_while_an_accepted_submission_awaits_its_payout(world: World):
    b = await world.bounty()
    s = await world.submit(b, "agent-1", keysend=True)
    await world.verdict(s, "ACCEPTED", 0.02)  # no payout.allocated yet
    async with world.store.transaction() as txn:
        assert await lifecycle.close_bounty(txn, b, "the deadline passed")
    assert await payout_close.judging(world.store, b)
    await payout_close.refund_rest(world.store, world.coordinator, world.cfg, b)
    books = await world.books(b)
    assert books.refunded == 0 and books.refund_pending == 0
    assert not await payout_close.maybe_settle(world.store, b)
    await payouts.on_accepted(world.store, world.coordinator, world.cfg, s)
    assert await world.received("agent-1") == 29_600_000
    assert not await payout_close.judging(world.store, b)
