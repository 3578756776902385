"""The service's state guards, fed the late or hostile input each exists for.

- A final invoice state (SETTLED, CANCELED, EXPIRED) is never reopened by a late or replayed
  Lightning update: a funding hold settled at the first payout that "comes back" CANCELED
  must not cancel the bounty whose agents it has paid.
- A bounty that has paid out cannot be cancelled (its money is partly with agents; closing
  refunds the rest).
"""

from __future__ import annotations

import pytest
from payouts_world import World

from l402tui.coordinator import payouts
from l402tui.coordinator.errors import Conflict
from l402tui.coordinator.service import Coordinator


@pytest.fixture
def service(world: World) -> Coordinator:
    return Coordinator(world.cfg, world.store, world.coordinator)


async def _paid_out(world: World, funding: str = "hold") -> tuple[str, str]:
    if funding == "self":  # the operator's node holds the pool itself
        top_up = await world.coordinator.create_invoice(200_000_000, "self-funding")
        await world.sponsor.pay(top_up.bolt11)
    b = await world.bounty(funding=funding)
    s = await world.submit(b, "agent-1", keysend=True)
    await world.verdict(s, "ACCEPTED", 0.02)
    await payouts.on_accepted(world.store, world.coordinator, world.cfg, s)
    assert await world.sent_to(s) == 29_600_000
    return b, s


async def _invoice(world: World, payment_hash: str) -> str:
    return (await world.store.fetchone("SELECT status FROM invoices WHERE payment_hash = ?",
                                       (payment_hash,)))["status"]


async def _bounty_status(world: World, b: str) -> str:
    return (await world.store.fetchone("SELECT status FROM bounties WHERE id = ?", (b,)))["status"]


async def _events(world: World, kind: str) -> int:
    return await world.store.scalar("SELECT COUNT(*) FROM events WHERE kind = ?", (kind,))


@pytest.mark.parametrize("late", ["CANCELED", "ACCEPTED", "OPEN", "EXPIRED"])
async def test_a_settled_funding_hold_is_not_reopened_by_a_late_update(world: World, service, late):
    b, _ = await _paid_out(world)
    funding = (await world.store.fetchone("SELECT funding_payment_hash FROM bounties WHERE id = ?",
                                          (b,)))["funding_payment_hash"]
    assert await _invoice(world, funding) == "SETTLED"
    before = await _events(world, "invoice.status")
    await service.apply_invoice_state(funding, late)
    assert await _invoice(world, funding) == "SETTLED"
    assert await _bounty_status(world, b) == "OPEN"
    assert await _events(world, "invoice.status") == before
    assert (await world.books(b)).problems == []


async def test_a_cancelled_funding_hold_is_not_reopened_by_a_late_accept(world: World, service):
    b = await world.bounty(pay=False)
    funding = (await world.store.fetchone("SELECT funding_payment_hash FROM bounties WHERE id = ?",
                                          (b,)))["funding_payment_hash"]
    await service.apply_invoice_state(funding, "CANCELED")
    assert await _bounty_status(world, b) == "CANCELED"
    await service.apply_invoice_state(funding, "ACCEPTED")
    assert await _invoice(world, funding) == "CANCELED"  # no funding to record or pay from
    assert await _bounty_status(world, b) == "CANCELED"


async def test_a_lapsed_stake_is_not_reopened_by_a_late_accept(world: World, service):
    b = await world.bounty()
    s = await world.submit(b, "agent-1", stake_sats=500, pay_stake=False)
    stake = (await world.store.fetchone("SELECT stake_payment_hash FROM submissions WHERE id = ?",
                                        (s,)))["stake_payment_hash"]
    await service.apply_invoice_state(stake, "EXPIRED")
    await service.apply_invoice_state(stake, "ACCEPTED")
    assert await _invoice(world, stake) == "EXPIRED"


@pytest.mark.parametrize("funding", ["hold", "self"])
async def test_a_bounty_that_has_paid_out_cannot_be_cancelled(world: World, service, funding):
    b, s = await _paid_out(world, funding)
    with pytest.raises(Conflict) as refused:
        await service.cancel_bounty(b)
    assert refused.value.code == "cannot_cancel" and "paid out" in refused.value.message
    assert "close it" in refused.value.message  # what to do instead
    assert await _bounty_status(world, b) == "OPEN"
    assert await _events(world, "bounty.status") == 0
    assert (await world.books(b)).problems == []


async def test_a_bounty_with_a_payout_awaiting_its_claim_cannot_be_cancelled(world: World, service):
    """Owed but not yet claimed is paid out as far as cancelling goes: the agent is owed it."""
    b = await world.bounty(funding="self")
    s = await world.submit(b, "agent-1")
    await world.verdict(s, "ACCEPTED", 0.02)
    await payouts.on_accepted(world.store, world.coordinator, world.cfg, s)
    with pytest.raises(Conflict, match="paid out"):
        await service.cancel_bounty(b)
    assert await _bounty_status(world, b) == "OPEN"


async def test_a_bounty_that_paid_nothing_can_be_cancelled(world: World, service):
    """The guard refuses only what it should: the same bounty before its first payout cancels."""
    b = await world.bounty()
    view = await service.cancel_bounty(b)
    assert view["status"] == "CANCELED"
