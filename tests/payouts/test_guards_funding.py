"""The sponsor's funding, fed the states in which there is nothing to book or to settle: an
unpaid hold, a cancelled self-funded bounty, a hold the books say is gone, a hold the node
cancelled behind the books' back."""

from __future__ import annotations

import pytest
from payouts_world import World

from l402tui.coordinator import ledger
from l402tui.coordinator.payout_funding import FundingUnavailable, record_funding, settle_funding


async def _bounty(world: World, b: str) -> dict:
    return await world.store.fetchone("SELECT * FROM bounties WHERE id = ?", (b,))


async def test_an_unpaid_funding_hold_is_not_booked(world: World):
    b = await world.bounty(pay=False)  # the invoice is OPEN: the sponsor has not paid
    async with ledger.transition(world.store, b) as txn:
        assert not await record_funding(txn, b)
    assert not await ledger.posted(world.store, f"fund:{b}")
    assert (await world.books(b)).pool_left == 0


async def test_a_cancelled_self_funded_bounty_reserves_nothing(world: World):
    b = await world.bounty(funding="self")
    async with world.store.transaction() as txn:
        await txn.execute("UPDATE bounties SET status = 'CANCELED' WHERE id = ?", (b,))
    async with ledger.transition(world.store, b) as txn:
        assert not await record_funding(txn, b)
    assert (await world.books(b)).pool_left == 0


@pytest.mark.parametrize("status", ["OPEN", "CANCELED", "EXPIRED"])
async def test_a_hold_the_books_say_is_not_accepted_is_never_settled(world: World, monkeypatch, status):
    b = await world.bounty()
    bounty = await _bounty(world, b)
    async with world.store.transaction() as txn:
        await txn.execute("UPDATE invoices SET status = ? WHERE payment_hash = ?",
                          (status, bounty["funding_payment_hash"]))

    async def never(*args, **kwargs):
        raise AssertionError("asked the node to settle a hold the books say is not ACCEPTED")

    monkeypatch.setattr(world.coordinator, "settle_hold", never)
    with pytest.raises(FundingUnavailable):
        await settle_funding(world.store, world.coordinator, bounty)
    assert await world.store.fetchall("SELECT * FROM events WHERE kind LIKE 'funding.%'") == []


async def test_a_hold_the_node_cancelled_is_recorded_lost_not_settled(world: World):
    b = await world.bounty()
    bounty = await _bounty(world, b)
    await world.coordinator.cancel_hold(bounty["funding_payment_hash"])  # the books still say ACCEPTED
    with pytest.raises(FundingUnavailable):
        await settle_funding(world.store, world.coordinator, bounty)
    inv = await world.store.fetchone("SELECT status FROM invoices WHERE payment_hash = ?",
                                     (bounty["funding_payment_hash"],))
    assert inv["status"] == "CANCELED"
    kinds = [r["kind"] for r in await world.store.fetchall("SELECT kind FROM events WHERE kind LIKE 'funding.%'")]
    assert kinds == ["funding.lost"]
    assert not await ledger.posted(world.store, f"fund:{b}")
