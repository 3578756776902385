"""A payout that keeps failing for sure is tried exactly ``coordinator.payout_max_attempts``
times, then handed to /claim (nothing is lost: the payee claims it with an invoice)."""

from __future__ import annotations

from payouts_world import World

from l402tui.coordinator import payout_sender, payouts
from l402tui.lightning.backend import NoRoute


async def test_a_payout_failing_for_sure_is_tried_max_attempts_times_then_awaits_a_claim(tmp_path, monkeypatch):
    world = await World.open(tmp_path, coordinator__payout_max_attempts=3)
    try:
        b = await world.bounty()
        s = await world.submit(b, "agent-2", keysend=True)
        await world.verdict(s, "ACCEPTED", 0.02)

        async def no_route(*args, **kwargs):
            raise NoRoute("no route to agent-2")

        monkeypatch.setattr(world.coordinator, "keysend", no_route)
        await payouts.on_accepted(world.store, world.coordinator, world.cfg, s)
        seen = []
        for _ in range(5):
            async with payout_sender.payout_lock(world.store):
                row = await payout_sender.attempt(world.store, world.coordinator, world.cfg, f"payout:{s}")
            seen.append((row["attempts"], row["status"]))
        assert seen[:2] == [(2, "FAILED"), (3, "AWAITING_CLAIM")]
        assert seen[-1] == (3, "AWAITING_CLAIM")  # a row awaiting a claim is not sent again
        assert await world.received("agent-2") == 0
    finally:
        await world.close()
