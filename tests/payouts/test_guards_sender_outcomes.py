"""The payout sender's reading of an outcome, fed the answers that must not cause a second send.

An error that does not prove nothing was sent (a timeout, a dropped connection) is looked
up on the node before anything is retried; a completion recorded once is never recorded
again, whoever reports it a second time.
"""

from __future__ import annotations

from payouts_world import World

from l402tui.coordinator import payout_sender, payouts
from l402tui.lightning.backend import LightningError, Payment, PaymentState, PaymentTimeout


async def _accepted_keysend(world: World) -> tuple[str, str]:
    b = await world.bounty()
    s = await world.submit(b, "agent-2", keysend=True)
    await world.verdict(s, "ACCEPTED", 0.02)
    return b, s


async def _row(world: World, key: str) -> dict:
    return await world.store.fetchone("SELECT * FROM payments WHERE idempotency_key = ?", (key,))


async def test_an_error_after_the_keysend_went_out_is_looked_up_not_retried(world: World, monkeypatch):
    """The node sent the keysend, then the answer was lost (a timeout, a dropped connection):
    the row is decided by a lookup, and the agent is paid once however often the clock ticks."""
    b, s = await _accepted_keysend(world)
    real = world.coordinator.keysend

    async def sent_then_lost(*args, **kwargs):
        await real(*args, **kwargs)
        raise PaymentTimeout("the node stopped answering after the send")

    with monkeypatch.context() as m:
        m.setattr(world.coordinator, "keysend", sent_then_lost)
        await payouts.on_accepted(world.store, world.coordinator, world.cfg, s)
        assert await world.received("agent-2") == 29_600_000
        for _ in range(3):
            await payouts.tick(world.store, world.coordinator, world.cfg)
    row = await _row(world, f"payout:{s}")
    assert row["status"] == "COMPLETE" and row["attempts"] == 1
    assert await world.received("agent-2") == 29_600_000  # once
    assert (await world.books(b)).problems == []


async def test_an_unclassified_error_is_looked_up_too(world: World, monkeypatch):
    """A plain LightningError (not one of the 'nothing was sent' kinds) after the send."""
    b, s = await _accepted_keysend(world)
    real = world.coordinator.keysend

    async def sent_then_broken(*args, **kwargs):
        await real(*args, **kwargs)
        raise LightningError("connection reset by peer")

    with monkeypatch.context() as m:
        m.setattr(world.coordinator, "keysend", sent_then_broken)
        await payouts.on_accepted(world.store, world.coordinator, world.cfg, s)
        await payouts.tick(world.store, world.coordinator, world.cfg)
    assert (await _row(world, f"payout:{s}"))["status"] == "COMPLETE"
    assert await world.received("agent-2") == 29_600_000


async def test_a_second_report_of_a_completed_payment_changes_nothing(world: World):
    """A late lookup answer (or an operator's) for a row already COMPLETE: no second event, no
    new fee, no second booking."""
    b, s = await _accepted_keysend(world)
    await payouts.on_accepted(world.store, world.coordinator, world.cfg, s)
    row = await _row(world, f"payout:{s}")
    assert row["status"] == "COMPLETE"
    entries = await world.store.scalar("SELECT COUNT(*) FROM ledger_entries")
    late = Payment(row["payment_hash"], row["amount_msat"], row["fee_msat"] + 5_000, PaymentState.COMPLETE)
    async with payout_sender.payout_lock(world.store):
        await payout_sender.complete(world.store, row, late)
    again = await _row(world, f"payout:{s}")
    assert again["fee_msat"] == row["fee_msat"] and again["updated_at"] == row["updated_at"]
    assert await world.store.scalar("SELECT COUNT(*) FROM events WHERE kind = 'payment.complete' "
                                    "AND subject_id = ?", (f"payout:{s}",)) == 1
    assert await world.store.scalar("SELECT COUNT(*) FROM ledger_entries") == entries
    assert (await world.books(b)).problems == []
