"""CLOSED -> SETTLED only when nothing is left to decide: fed a closed bounty with one thing
outstanding that no other check sees."""

from __future__ import annotations

from payouts_world import World

from l402tui.coordinator import ledger, lifecycle, payout_close, payout_stakes, payouts, stability


async def _close(world: World, b: str) -> None:
    async with world.store.transaction() as txn:
        assert await lifecycle.close_bounty(txn, b, "test")
    await payout_close.refund_rest(world.store, world.coordinator, world.cfg, b)


async def _status(world: World, b: str) -> str:
    return (await world.store.fetchone("SELECT status FROM bounties WHERE id = ?", (b,)))["status"]


async def test_a_holdback_still_held_keeps_the_bounty_closed_even_with_its_timer_done(world: World):
    b = await world.bounty()
    s = await world.submit(b, "agent-1", keysend=True)
    await world.verdict(s, "ACCEPTED", 0.02)
    await payouts.on_accepted(world.store, world.coordinator, world.cfg, s)
    await _close(world, b)
    async with world.store.transaction() as txn:  # the timer is done but nothing released or forfeited it
        await txn.execute("UPDATE timers SET done_at = 1 WHERE kind = ? AND subject_id = ?", (stability.TIMER, s))
    assert (await world.books(b)).held_back == 7_400_000
    assert not await payout_close.maybe_settle(world.store, b)
    assert await _status(world, b) == "CLOSED"


async def test_a_stake_still_held_keeps_the_bounty_closed(world: World):
    """A rejected submission whose stake the node has not resolved yet (booked as held)."""
    b = await world.bounty(stake_sats=1_000)
    s = await world.submit(b, "agent-1", stake_sats=1_000)
    await world.verdict(s, "REJECTED")
    await _close(world, b)
    sub = await world.store.fetchone("SELECT * FROM submissions WHERE id = ?", (s,))
    invoice = await world.store.fetchone("SELECT * FROM invoices WHERE payment_hash = ?", (sub["stake_payment_hash"],))
    await payout_stakes.book_stake(world.store, world.coordinator, sub, invoice, "ACCEPTED", None)
    books = await world.books(b)
    assert books.stakes_held == 1_000_000 and books.pool_left == 0 and books.held_back == 0
    assert not await payout_close.maybe_settle(world.store, b)
    assert await _status(world, b) == "CLOSED"
    await payouts.on_verdict(world.store, world.coordinator, world.cfg, s)  # the stake is resolved now
    await payouts.tick(world.store, world.coordinator, world.cfg)
    assert (await world.books(b)).stakes_held == 0
    assert await _status(world, b) == "SETTLED"
    assert await ledger.books_balance(world.store) == []


async def test_a_flagged_submission_awaiting_the_sponsor_keeps_the_bounty_closed(world: World):
    """Its stake hold is still held and not booked yet: only the sponsor's decision ends it."""
    b = await world.bounty(stake_sats=1_000)
    s = await world.submit(b, "agent-1", stake_sats=1_000)
    await world.verdict(s, "FLAGGED")
    await _close(world, b)
    books = await world.books(b)
    assert books.stakes_held == 0 and books.pool_left == 0 and books.held_back == 0
    assert not await payout_close.maybe_settle(world.store, b)
    assert await _status(world, b) == "CLOSED"
