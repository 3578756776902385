"""reconcile() decides PENDING rows only, from what the node knows: fed a row the node never
saw (sent afresh) and rows that are not PENDING (left alone, the node not even asked)."""

from __future__ import annotations

import pytest
from payouts_world import World

from l402tui.coordinator import payout_sender, payouts


class Killed(BaseException):
    pass


class DiesBeforeSend:
    """The coordinator's node (keysend preimages chosen by the caller) in a process that dies
    after recording the attempt and its hash, before the keysend leaves."""

    def __init__(self, inner):
        self.inner = inner

    def __getattr__(self, item):
        return getattr(self.inner, item)

    async def keysend(self, destination, amount_msat, *, max_fee_msat=None, preimage=None):
        raise Killed()


async def _accepted(world: World, agent: str = "agent-2") -> tuple[str, str]:
    b = await world.bounty()
    s = await world.submit(b, agent, keysend=True)
    await world.verdict(s, "ACCEPTED", 0.02)
    return b, s


async def _row(world: World, key: str) -> dict:
    return await world.store.fetchone("SELECT * FROM payments WHERE idempotency_key = ?", (key,))


async def test_a_pending_keysend_the_node_never_saw_is_sent_after_the_crash(world: World):
    b, s = await _accepted(world)
    with pytest.raises(Killed):
        await payouts.on_accepted(world.store, DiesBeforeSend(world.coordinator), world.cfg, s)
    row = await _row(world, f"payout:{s}")
    assert row["status"] == "PENDING" and row["payment_hash"] and row["attempts"] == 1
    await payouts.tick(world.store, world.coordinator, world.cfg)
    row = await _row(world, f"payout:{s}")
    assert row["status"] == "COMPLETE" and row["attempts"] == 2
    assert await world.received("agent-2") == 29_600_000
    assert (await world.books(b)).problems == []


@pytest.mark.parametrize("status", ["FAILED", "QUEUED", "AWAITING_CLAIM", "UNKNOWN"])
async def test_a_row_that_is_not_pending_is_not_looked_up_nor_changed(world: World, monkeypatch, status):
    b, s = await _accepted(world)
    with pytest.raises(Killed):
        await payouts.on_accepted(world.store, DiesBeforeSend(world.coordinator), world.cfg, s)
    async with world.store.transaction() as txn:
        await txn.execute("UPDATE payments SET status = ? WHERE idempotency_key = ?", (status, f"payout:{s}"))
    before = await _row(world, f"payout:{s}")

    async def never(*args, **kwargs):
        raise AssertionError("the node was asked about a row that is not PENDING")

    monkeypatch.setattr(world.coordinator, "lookup_payment", never)
    monkeypatch.setattr(world.coordinator, "list_payments", never)
    async with payout_sender.payout_lock(world.store):
        assert await payout_sender.reconcile(world.store, world.coordinator, world.cfg, before) == status
    assert await _row(world, f"payout:{s}") == before
