"""A submission is PAID_FULL only once its 80 % payout is paid: fed a holdback claimed before
the payout it follows."""

from __future__ import annotations

import time

from payouts_world import World

from l402tui.coordinator import payouts


async def _status(world: World, s: str) -> str:
    return (await world.store.fetchone("SELECT status FROM submissions WHERE id = ?", (s,)))["status"]


async def test_a_holdback_claimed_before_the_payout_does_not_make_the_submission_paid_full(world: World):
    b = await world.bounty()
    s = await world.submit(b, "agent-1")  # no keysend: both amounts wait for a claim
    await world.verdict(s, "ACCEPTED", 0.02)
    await payouts.on_accepted(world.store, world.coordinator, world.cfg, s)
    later = time.time() + 61
    await payouts.tick(world.store, world.coordinator, world.cfg, at=later)  # stability evaluation queued
    await world.finish_stability(s, {"error": 0.9}, baseline={"error": 1.0})
    await payouts.tick(world.store, world.coordinator, world.cfg, at=later)  # holds: the holdback is released
    rows = {r["purpose"]: r for r in await world.store.fetchall(
        "SELECT purpose, status, amount_msat FROM payments WHERE submission_id = ?", (s,))}
    assert {p: r["status"] for p, r in rows.items()} == {"payout": "AWAITING_CLAIM", "holdback": "AWAITING_CLAIM"}
    inv = await world.agents["agent-1"].create_invoice(rows["holdback"]["amount_msat"], "the holdback first")
    assert (await payouts.claim(world.store, world.coordinator, world.cfg, s, inv.bolt11))["status"] == "COMPLETE"
    assert await _status(world, s) == "ACCEPTED"  # the 80 % is still owed
    inv = await world.agents["agent-1"].create_invoice(rows["payout"]["amount_msat"], "then the payout")
    assert (await payouts.claim(world.store, world.coordinator, world.cfg, s, inv.bolt11))["status"] == "COMPLETE"
    assert await _status(world, s) == "PAID_FULL"
    assert (await world.books(b)).problems == []
