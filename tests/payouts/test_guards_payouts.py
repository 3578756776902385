"""The payouts engine's entry guards, fed the submissions and bounties they exist to refuse."""

from __future__ import annotations

import pytest
from payouts_world import World

from l402tui.coordinator import ledger, payouts
from l402tui.coordinator.errors import Conflict


@pytest.mark.parametrize("status", ["REJECTED", "FLAGGED", "QUEUED", "EVALUATING"])
async def test_a_submission_that_was_not_accepted_is_never_paid(world: World, status: str):
    """Its verdict carries an improvement (a flagged one can score well): it still earns nothing."""
    b = await world.bounty()
    s = await world.submit(b, "agent-1", keysend=True)
    await world.verdict(s, status, 0.02)
    with pytest.raises(Conflict) as err:
        await payouts.on_accepted(world.store, world.coordinator, world.cfg, s)
    assert err.value.code == "not_accepted"
    await payouts.tick(world.store, world.coordinator, world.cfg)
    assert await world.store.fetchall("SELECT * FROM payments WHERE submission_id = ?", (s,)) == []
    assert not await ledger.posted(world.store, f"payout:{s}")
    assert await world.received("agent-1") == 0
    funding = await world.store.fetchone("SELECT i.status FROM invoices i JOIN bounties b "
                                         "ON b.funding_payment_hash = i.payment_hash WHERE b.id = ?", (b,))
    assert funding["status"] == "ACCEPTED"  # the sponsor's hold is not even settled
