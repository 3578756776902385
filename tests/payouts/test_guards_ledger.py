"""The ledger's rules, each fed the balanced-but-wrong posting it exists to refuse.

Every posting here sums to zero (so "does not balance" never fires) and is refused by one
rule only: delete that rule and the test fails.  A refused transition rolls back, halts
payouts, and says which account or total is wrong.
"""

from __future__ import annotations

import pytest
from payouts_world import World

from l402tui.coordinator import ledger, payouts


async def _accepted(world: World) -> tuple[str, str, str]:
    """A hold-funded bounty with one accepted submission owed its 80 % (awaiting a claim),
    and a second submission that is owed nothing."""
    b = await world.bounty()
    owed, other = await world.submit(b, "agent-1"), await world.submit(b, "agent-2")
    await world.verdict(owed, "ACCEPTED", 0.02)
    await payouts.on_accepted(world.store, world.coordinator, world.cfg, owed)
    books = await world.books(b)
    assert books.problems == [] and books.owed == 29_600_000
    return b, owed, other


async def _refused(world: World, b: str, txn_id: str, transfers: list[ledger.Transfer], match: str) -> None:
    with pytest.raises(ledger.InvariantBroken, match=match) as broken:
        async with ledger.transition(world.store, b) as txn:
            assert await ledger.post(txn, txn_id, transfers, bounty_id=b)
    assert not await ledger.posted(world.store, txn_id)  # rolled back
    assert match in (await ledger.halted_reason(world.store) or "")
    assert b in str(broken.value)


async def test_paying_a_submission_that_is_owed_nothing_overdraws_its_account(world: World):
    """owed -> paid for the wrong submission: the totals are unchanged, only the per-account rule sees it."""
    b, owed, other = await _accepted(world)
    await _refused(world, b, f"sent:payout:{other}",
                   [ledger.Transfer(ledger.owed(other), ledger.paid(other), 29_600_000, other)],
                   f"owed:{other} is overdrawn by 29600000 msat")
    assert (await world.books(b)).problems == []


async def test_a_holdback_released_twice_overdraws_the_holdback(world: World):
    b, owed, _ = await _accepted(world)
    held = await ledger.balance(world.store, ledger.holdback(b))
    assert held == 7_400_000
    await _refused(world, b, f"holdback_release_again:{owed}",
                   [ledger.Transfer(ledger.holdback(b), ledger.owed(owed), held + 1, owed)],
                   f"holdback:{b} is overdrawn by 1 msat")


async def test_pool_money_moved_to_an_account_outside_the_bounty_books_is_missing(world: World):
    """pool -> an account no bounty total counts (here the operator's routing fees): nothing is
    overdrawn and nothing exceeds the funding, yet msat went missing from the bounty."""
    b, _, _ = await _accepted(world)
    await _refused(world, b, "misrouted:1",
                   [ledger.Transfer(ledger.pool(b), ledger.ROUTING_FEES, 1_000)],
                   "msat funded but")
    books = await world.books(b)
    assert books.problems == [] and books.funded == books.out + books.pool_left


async def test_paying_more_than_was_funded_is_refused(world: World):
    b, owed, _ = await _accepted(world)
    books = await world.books(b)
    await _refused(world, b, "overpay:1",
                   [ledger.Transfer(ledger.pool(b), ledger.owed(owed), books.pool_left + 1, owed)],
                   "exceeds the")


async def test_a_halt_from_a_refused_posting_stops_the_next_payout(world: World):
    b, owed, other = await _accepted(world)
    with pytest.raises(ledger.InvariantBroken):
        async with ledger.transition(world.store, b) as txn:
            await ledger.post(txn, "wrong", [ledger.Transfer(ledger.owed(other), ledger.paid(other), 1, other)],
                              bounty_id=b)
    await world.verdict(other, "ACCEPTED", 0.03)
    with pytest.raises(payouts.PayoutsHalted):
        await payouts.on_accepted(world.store, world.coordinator, world.cfg, other)
    assert await world.sent_to(other) == 0
