"""A hashless keysend (the backend picks the preimage) reconciled after a crash: the node's
list of payments is matched to the row by amount, so a payment of another amount to the same
node is never taken for it."""

from __future__ import annotations

import pytest
from payouts_world import World

from l402tui.coordinator import payouts


class Killed(BaseException):
    pass


class HashlessDying:
    """The coordinator's node behind a backend that picks keysend preimages itself, and a
    process that dies just before its first keysend leaves."""

    def __init__(self, inner, *, dead: bool = False):
        self.inner, self.dead = inner, dead

    def __getattr__(self, item):
        return getattr(self.inner, item)

    async def keysend(self, destination, amount_msat, **kw):
        if not self.dead:
            self.dead = True
            raise Killed()
        return await self.inner.keysend(destination, amount_msat, **kw)


async def test_a_hashless_keysend_is_not_matched_to_a_payment_of_another_amount(world: World):
    """The operator once sent agent-3 1,000 sat by hand (no payments row).  A payout keysend to
    agent-3 died before it left: reconciling it must send it, not book the agent as paid with
    the operator's smaller payment."""
    b = await world.bounty()
    s = await world.submit(b, "agent-3", keysend=True)
    await world.verdict(s, "ACCEPTED", 0.02)
    with pytest.raises(Killed):  # the funding hold was settled, the keysend never left
        await payouts.on_accepted(world.store, HashlessDying(world.coordinator), world.cfg, s)
    other = await world.coordinator.keysend(world.pubkeys["agent-3"], 1_000_000)  # the operator, by hand
    key = f"payout:{s}"
    row = await world.store.fetchone("SELECT * FROM payments WHERE idempotency_key = ?", (key,))
    assert row["status"] == "PENDING" and row["payment_hash"] is None and row["amount_msat"] != 1_000_000
    for _ in range(2):
        await payouts.tick(world.store, HashlessDying(world.coordinator, dead=True), world.cfg)
    row = await world.store.fetchone("SELECT * FROM payments WHERE idempotency_key = ?", (key,))
    assert row["status"] == "COMPLETE" and row["payment_hash"] != other.payment_hash
    assert await world.received("agent-3") == 1_000_000 + 29_600_000
    assert (await world.books(b)).problems == []
