"""A keysend whose payment hash the coordinator never learnt (killed right after the send):
adopted from the node's payment list, or left UNKNOWN for an operator — never sent again."""

from __future__ import annotations

import pytest
from payouts_world import World

from l402tui.coordinator import ledger, payouts


class Killed(BaseException):
    pass


class DiesAfterKeysend:
    """The coordinator's node, seen by a process that dies as its first keysend returns."""

    def __init__(self, inner):
        self.inner = inner
        self.armed = True

    def __getattr__(self, item):
        return getattr(self.inner, item)

    async def keysend(self, destination, amount_msat, **kw):
        payment = await self.inner.keysend(destination, amount_msat, **kw)
        if self.armed:
            self.armed = False
            raise Killed()
        return payment


class DiesAfterKeysendCannotList(DiesAfterKeysend):
    list_payments = None  # a backend without a payment list (the interface does not require one)


async def _crash_mid_keysend(world: World, node_cls) -> tuple[str, DiesAfterKeysend]:
    b = await world.bounty()
    s = await world.submit(b, "agent-3", keysend=True)
    await world.verdict(s, "ACCEPTED", 0.02)
    node = node_cls(world.coordinator)
    with pytest.raises(Killed):
        await payouts.on_accepted(world.store, node, world.cfg, s)
    await world.reopen_store()
    row = await world.store.fetchone("SELECT * FROM payments WHERE idempotency_key = ?", (f"payout:{s}",))
    assert row["status"] == "PENDING" and row["payment_hash"] is None  # sent, but its hash was never recorded
    return s, node


async def test_unrecorded_keysend_is_found_on_the_node_not_resent(world: World):
    s, node = await _crash_mid_keysend(world, DiesAfterKeysend)
    await payouts.tick(world.store, node, world.cfg)
    await payouts.tick(world.store, node, world.cfg)
    row = await world.store.fetchone("SELECT * FROM payments WHERE idempotency_key = ?", (f"payout:{s}",))
    assert row["status"] == "COMPLETE" and row["payment_hash"]
    assert await world.received("agent-3") == 29_600_000  # once
    assert await ledger.balance(world.store, ledger.paid(s)) == 29_600_000


async def test_without_a_payment_list_it_waits_for_the_operator(world: World):
    s, node = await _crash_mid_keysend(world, DiesAfterKeysendCannotList)
    for _ in range(3):
        await payouts.tick(world.store, node, world.cfg)
    row = await world.store.fetchone("SELECT * FROM payments WHERE idempotency_key = ?", (f"payout:{s}",))
    assert row["status"] == "UNKNOWN" and "check the node" in row["last_error"]
    assert await world.received("agent-3") == 29_600_000  # not sent a second time
    resolved = await payouts.resolve_unknown(world.store, node, world.cfg, f"payout:{s}", sent=True)
    assert resolved["status"] == "COMPLETE"
    bounty_id = (await world.store.fetchone("SELECT bounty_id FROM submissions"))["bounty_id"]
    assert (await world.books(bounty_id)).problems == []
