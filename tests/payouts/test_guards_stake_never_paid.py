"""A stake invoice that was never paid (it expired or was cancelled while still OPEN) books
nothing: no stake in, no stake returned, no refund event for money that never arrived."""

from __future__ import annotations

import pytest
from payouts_world import World

from l402tui.coordinator import ledger, payout_sender, payout_stakes


@pytest.mark.parametrize("state", ["EXPIRED", "CANCELED"])
async def test_a_stake_never_paid_books_nothing(world: World, state):
    b = await world.bounty(stake_sats=1_000)
    s = await world.submit(b, "agent-1", stake_sats=1_000, pay_stake=False)
    await world.verdict(s, "REJECTED")
    sub = await world.store.fetchone("SELECT * FROM submissions WHERE id = ?", (s,))
    async with world.store.transaction() as txn:
        await txn.execute("UPDATE invoices SET status = ? WHERE payment_hash = ?", (state, sub["stake_payment_hash"]))
    async with payout_sender.payout_lock(world.store):
        await payout_stakes.resolve_stake(world.store, world.coordinator, sub)
    assert not await ledger.posted(world.store, f"stake_in:{s}")
    assert not await ledger.posted(world.store, f"stake_return:{s}")
    books = await world.books(b)
    assert books.stakes_in == 0 and books.stakes_returned == 0 and books.problems == []
    assert await world.store.fetchall("SELECT * FROM events WHERE kind LIKE 'stake.%'") == []
