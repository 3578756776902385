"""What the payout rule may still take from a pool: the pool net of what payouts took, plus
holdbacks forfeited back into it, and never more than the pool's balance."""

from __future__ import annotations

import json
import time

from payouts_world import World

from l402tui.coordinator import lifecycle, payout_close, payouts
from l402tui.coordinator.payout_funding import pool_left


async def _payload(world: World, kind: str, subject: str) -> dict:
    row = await world.store.fetchone("SELECT payload_json FROM events WHERE kind = ? AND subject_id = ?",
                                     (kind, subject))
    return json.loads(row["payload_json"])


async def test_a_forfeited_holdback_can_be_won_again(world: World):
    b = await world.bounty(target=0.05)
    s = await world.submit(b, "agent-1", keysend=True)
    await world.verdict(s, "ACCEPTED", 0.02, error=0.98)
    await payouts.on_accepted(world.store, world.coordinator, world.cfg, s)
    gross = (await _payload(world, "payout.allocated", s))["gross_msat"]
    assert await pool_left(world.store, b) == 100_000_000 - gross
    later = time.time() + 61
    await payouts.tick(world.store, world.coordinator, world.cfg, at=later)
    await world.finish_stability(s, {"error": 1.0})  # its gain vanished on the next set
    await payouts.tick(world.store, world.coordinator, world.cfg, at=later)
    back = (await _payload(world, "holdback.forfeited", s))["amount_msat"]
    assert back > 0
    assert await pool_left(world.store, b) == 100_000_000 - gross + back


async def test_a_refunded_pool_has_nothing_left_to_win(world: World):
    b = await world.bounty()
    async with world.store.transaction() as txn:
        assert await lifecycle.close_bounty(txn, b, "the deadline passed")
    await payout_close.refund_rest(world.store, world.coordinator, world.cfg, b)
    assert (await world.books(b)).refunded > 0
    assert await pool_left(world.store, b) == 0
