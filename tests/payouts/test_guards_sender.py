"""The payout sender's one-send rule, fed the rows it exists to leave alone.

A send that may already have reached the node (PENDING) or did (COMPLETE) is never sent
again, whoever asks: only a lookup on the node may decide a PENDING row.
"""

from __future__ import annotations

import pytest
from payouts_world import World

from l402tui.coordinator import payout_sender, payouts


async def _keysend_paid(world: World) -> tuple[str, str]:
    b = await world.bounty()
    s = await world.submit(b, "agent-2", keysend=True)
    await world.verdict(s, "ACCEPTED", 0.02)
    return b, s


async def _attempt(world: World, key: str) -> dict:
    async with payout_sender.payout_lock(world.store):
        return await payout_sender.attempt(world.store, world.coordinator, world.cfg, key)


async def test_a_complete_payout_is_never_sent_again(world: World):
    _, s = await _keysend_paid(world)
    await payouts.on_accepted(world.store, world.coordinator, world.cfg, s)
    assert await world.received("agent-2") == 29_600_000
    again = await _attempt(world, f"payout:{s}")
    assert again["status"] == "COMPLETE" and again["attempts"] == 1
    await payouts.tick(world.store, world.coordinator, world.cfg)
    assert await world.received("agent-2") == 29_600_000  # once


async def test_a_pending_payout_is_looked_up_not_resent(world: World, monkeypatch):
    """The node paid but the process stopped before it wrote the outcome: the row is PENDING."""
    _, s = await _keysend_paid(world)

    async def crash_before_recording(*args, **kwargs):
        raise SystemExit("killed between the send and its record")

    with monkeypatch.context() as m:
        m.setattr(payout_sender, "complete", crash_before_recording)
        with pytest.raises(SystemExit):
            await payouts.on_accepted(world.store, world.coordinator, world.cfg, s)
    row = await world.store.fetchone("SELECT * FROM payments WHERE idempotency_key = ?", (f"payout:{s}",))
    assert row["status"] == "PENDING" and row["payment_hash"]
    assert await world.received("agent-2") == 29_600_000

    again = await _attempt(world, f"payout:{s}")
    assert again["status"] == "PENDING" and again["attempts"] == 1  # left for the lookup
    assert await world.received("agent-2") == 29_600_000

    await payouts.tick(world.store, world.coordinator, world.cfg)  # reconciles: the node says COMPLETE
    done = await world.store.fetchone("SELECT * FROM payments WHERE idempotency_key = ?", (f"payout:{s}",))
    assert done["status"] == "COMPLETE" and done["attempts"] == 1
    assert await world.received("agent-2") == 29_600_000
    assert (await world.books((await world.store.fetchone(
        "SELECT bounty_id FROM submissions WHERE id = ?", (s,)))["bounty_id"])).problems == []
