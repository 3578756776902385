"""The after-close step (refund the rest of the pool to the sponsor) run for a bounty that is
not CLOSED, as a replayed or misrouted callback would: it does nothing."""

from __future__ import annotations

from payouts_world import World

from l402tui.coordinator import payouts


async def test_the_close_step_refunds_nothing_of_a_bounty_still_open(world: World):
    b = await world.bounty()
    await payouts.on_bounty_closed(world.store, world.coordinator, world.cfg, b)
    bounty = await world.store.fetchone("SELECT status, funding_payment_hash FROM bounties WHERE id = ?", (b,))
    assert bounty["status"] == "OPEN"
    after = await world.books(b)
    assert after.refunded == 0 and after.refund_pending == 0
    invoice = await world.store.fetchone("SELECT status FROM invoices WHERE payment_hash = ?",
                                         (bounty["funding_payment_hash"],))
    assert invoice["status"] == "ACCEPTED"  # the sponsor's hold is not cancelled under the open bounty
    assert (await world.coordinator.lookup_invoice(bounty["funding_payment_hash"])).state.value == "ACCEPTED"
    assert await world.store.fetchall("SELECT * FROM events WHERE kind LIKE 'refund.%'") == []
