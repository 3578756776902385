"""Claims and hashless keysends, fed the cases that would pay twice or not at all."""

from __future__ import annotations

import pytest
from payouts_world import World

from l402tui.coordinator import payout_sender, payouts
from l402tui.coordinator.errors import Conflict, Invalid


class Killed(BaseException):
    pass


async def _owed(world: World, agent: str = "agent-1", *, keysend: bool = False) -> tuple[str, str]:
    b = await world.bounty()
    s = await world.submit(b, agent, keysend=keysend)
    await world.verdict(s, "ACCEPTED", 0.02)
    await payouts.on_accepted(world.store, world.coordinator, world.cfg, s)
    return b, s


async def test_a_claim_while_the_payout_is_in_flight_is_refused(world: World):
    b, s = await _owed(world)
    async with world.store.transaction() as txn:  # an attempt on record, its outcome not yet known
        await txn.execute("UPDATE payments SET status = 'PENDING' WHERE idempotency_key = ?", (f"payout:{s}",))
    inv = await world.agents["agent-1"].create_invoice(29_600_000, "again")
    with pytest.raises(Conflict) as err:
        await payouts.claim(world.store, world.coordinator, world.cfg, s, inv.bolt11)
    assert err.value.code == "payment_in_flight"
    row = await world.store.fetchone("SELECT * FROM payments WHERE idempotency_key = ?", (f"payout:{s}",))
    assert row["status"] == "PENDING" and row["bolt11"] is None
    assert await world.received("agent-1") == 0


async def test_a_claim_with_an_invoice_about_to_expire_is_refused(world: World):
    """An invoice that expires within 30 s may expire mid-payment; the payee makes a fresh one."""
    b, s = await _owed(world)
    inv = await world.agents["agent-1"].create_invoice(29_600_000, "short", expiry_s=20)
    with pytest.raises(Invalid) as err:
        await payouts.claim(world.store, world.coordinator, world.cfg, s, inv.bolt11)
    assert err.value.code == "invoice_expired"
    row = await world.store.fetchone("SELECT * FROM payments WHERE idempotency_key = ?", (f"payout:{s}",))
    assert row["status"] == "AWAITING_CLAIM" and row["bolt11"] is None
    assert await world.received("agent-1") == 0
    fresh = await world.agents["agent-1"].create_invoice(29_600_000, "fresh", expiry_s=120)
    assert (await payouts.claim(world.store, world.coordinator, world.cfg, s, fresh.bolt11))["status"] == "COMPLETE"


class Hashless:
    """The coordinator's node behind a backend that picks keysend preimages itself."""

    def __init__(self, inner, *, die_before_send: bool = False):
        self.inner, self.die_before_send = inner, die_before_send

    def __getattr__(self, item):
        return getattr(self.inner, item)

    async def keysend(self, destination, amount_msat, **kw):
        if self.die_before_send:
            self.die_before_send = False
            raise Killed()
        return await self.inner.keysend(destination, amount_msat, **kw)


async def test_a_hashless_keysend_that_never_left_is_not_matched_to_another_rows_payment(world: World):
    """Two payouts of the same amount to the same node: the first was paid and recorded, the
    process died before the second was sent.  The node's list holds only the first payment,
    which belongs to the first row: the second is sent, not marked paid with the first's."""
    first = Hashless(world.coordinator)
    _, s1 = await _owed(world, "agent-3", keysend=False)
    b2 = await world.bounty()
    s1_row = await world.store.fetchone("SELECT * FROM payments WHERE idempotency_key = ?", (f"payout:{s1}",))
    async with world.store.transaction() as txn:  # s1 is paid by keysend too
        await txn.execute("UPDATE payments SET status = 'QUEUED', destination = ? WHERE idempotency_key = ?",
                          (world.pubkeys["agent-3"], s1_row["idempotency_key"]))
    async with payout_sender.payout_lock(world.store):
        done = await payout_sender.attempt(world.store, first, world.cfg, f"payout:{s1}")
    assert done["status"] == "COMPLETE" and done["payment_hash"]
    s2 = await world.submit(b2, "agent-3", keysend=True)
    await world.verdict(s2, "ACCEPTED", 0.02)
    with pytest.raises(Killed):
        await payouts.on_accepted(world.store, Hashless(world.coordinator, die_before_send=True), world.cfg, s2)
    row = await world.store.fetchone("SELECT * FROM payments WHERE idempotency_key = ?", (f"payout:{s2}",))
    assert row["status"] == "PENDING" and row["payment_hash"] is None and row["amount_msat"] == done["amount_msat"]
    for _ in range(2):
        await payouts.tick(world.store, first, world.cfg)
    row = await world.store.fetchone("SELECT * FROM payments WHERE idempotency_key = ?", (f"payout:{s2}",))
    assert row["status"] == "COMPLETE" and row["payment_hash"] != done["payment_hash"]
    assert await world.received("agent-3") == 2 * 29_600_000
    for b in (s1_row["bounty_id"], b2):
        assert (await world.books(b)).problems == []


async def test_a_claim_while_payouts_are_halted_records_nothing(world: World):
    from l402tui.coordinator import ledger

    b, s = await _owed(world)
    await ledger.halt(world.store, "an operator is looking")
    inv = await world.agents["agent-1"].create_invoice(29_600_000, "halted")
    with pytest.raises(payouts.PayoutsHalted):
        await payouts.claim(world.store, world.coordinator, world.cfg, s, inv.bolt11)
    row = await world.store.fetchone("SELECT * FROM payments WHERE idempotency_key = ?", (f"payout:{s}",))
    assert row["status"] == "AWAITING_CLAIM" and row["bolt11"] is None and row["attempts"] == 0
    assert await world.store.fetchall("SELECT * FROM events WHERE kind = 'payment.claimed'") == []
    assert await world.received("agent-1") == 0


async def test_an_operator_cannot_book_as_sent_a_payment_that_is_not_unknown(world: World):
    """Only an UNKNOWN row awaits the operator's word; marking an unpaid claim 'sent' would book
    money the agent never got."""
    b, s = await _owed(world)
    with pytest.raises(Conflict) as err:
        await payouts.resolve_unknown(world.store, world.coordinator, world.cfg, f"payout:{s}", sent=True)
    assert err.value.code == "not_unknown"
    row = await world.store.fetchone("SELECT * FROM payments WHERE idempotency_key = ?", (f"payout:{s}",))
    assert row["status"] == "AWAITING_CLAIM"
    assert (await world.books(b)).paid == 0
