"""More of the ledger's rules, each fed the one bad posting it exists to refuse.

Like ``test_guards_ledger.py``: every posting here would otherwise commit, and only the
rule under test refuses it, so deleting that rule fails its test.
"""

from __future__ import annotations

import pytest
from payouts_world import World

from l402tui.coordinator import ledger, payouts


async def _accepted(world: World) -> tuple[str, str, str]:
    """A hold-funded bounty with one accepted submission owed its 80 % (awaiting a claim),
    and a second submission that is owed nothing."""
    b = await world.bounty()
    owed, other = await world.submit(b, "agent-1"), await world.submit(b, "agent-2")
    await world.verdict(owed, "ACCEPTED", 0.02)
    await payouts.on_accepted(world.store, world.coordinator, world.cfg, owed)
    assert (await world.books(b)).problems == []
    return b, owed, other


async def _refused(world: World, b: str, match: str, *, sql: str | None = None, params: tuple = (),
                   txn_id: str | None = None, transfers: list[ledger.Transfer] | None = None) -> None:
    with pytest.raises(ledger.InvariantBroken, match=match):
        async with ledger.transition(world.store, b) as txn:
            if sql is not None:
                assert await txn.execute(sql, params)
            if txn_id is not None:
                assert await ledger.post(txn, txn_id, transfers or [], bounty_id=b)
    if txn_id is not None:
        assert not await ledger.posted(world.store, txn_id)  # rolled back
    assert match in (await ledger.halted_reason(world.store) or "")


async def test_a_negative_transfer_is_refused_before_anything_is_written(world: World):
    b, owed, _ = await _accepted(world)
    async with world.store.transaction() as txn:
        with pytest.raises(ledger.LedgerError, match="is negative"):
            await ledger.post(txn, "negative:1", [ledger.Transfer(ledger.owed(owed), ledger.paid(owed), -5, owed)],
                              bounty_id=b)
        with pytest.raises(ledger.LedgerError, match="whole msat"):
            await ledger.post(txn, "fraction:1", [ledger.Transfer(ledger.pool(b), ledger.owed(owed), 1.5, owed)],
                              bounty_id=b)
    assert not await ledger.posted(world.store, "negative:1")
    assert not await ledger.posted(world.store, "fraction:1")


async def test_a_source_account_that_ends_up_holding_money_is_refused(world: World):
    """One agent's stake account credited from another's: every total is unchanged (both are
    stake sources), only "a source never holds more than its owner put in" sees it."""
    b, owed, other = await _accepted(world)
    await _refused(world, b, f"staker:{other} holds 5000 msat more than its owner put in",
                   txn_id="stake_swap:1",
                   transfers=[ledger.Transfer(ledger.staker(owed), ledger.staker(other), 5_000, other)])


async def test_a_stake_taken_but_held_nowhere_breaks_the_stake_equation(world: World):
    """An agent's stake booked in but moved straight to an account no bounty total counts:
    nothing is overdrawn and the bounty's money adds up; only the stake equation sees it."""
    b, _, other = await _accepted(world)
    await _refused(world, b, "stakes: 5000 msat staked but 0 held", txn_id="stake_lost:1",
                   transfers=[ledger.Transfer(ledger.staker(other), ledger.ROUTING_FEES, 5_000, other)])


async def test_a_payment_marked_complete_without_its_ledger_entry_is_refused(world: World):
    """The payments table says the payout went out, the ledger never moved it from owed to paid."""
    b, owed, _ = await _accepted(world)
    await _refused(world, b, f"payments marked COMPLETE total 29600000 msat for paid:{owed} but the ledger "
                             "shows 0 msat",
                   sql="UPDATE payments SET status = 'COMPLETE' WHERE idempotency_key = ?", params=(f"payout:{owed}",))
    row = await world.store.fetchone("SELECT status FROM payments WHERE idempotency_key = ?", (f"payout:{owed}",))
    assert row["status"] == "AWAITING_CLAIM"


async def test_books_that_do_not_sum_to_zero_are_reported_and_block_resume(world: World):
    """An entry written outside ``post`` (and outside any bounty): the whole-ledger check names the
    total, and an operator cannot resume payouts over it."""
    b, _, _ = await _accepted(world)
    async with world.store.transaction() as txn:
        await txn.insert("ledger_entries", {"txn_id": "stray:1", "account": ledger.FEES, "amount_msat": 7,
                                            "bounty_id": None, "submission_id": None, "memo": "", "created_at": 0.0})
    problems = await ledger.books_balance(world.store)
    assert "the books sum to 7 msat, not 0" in problems
    assert "transaction stray:1 does not balance (sums to 7 msat)" in problems
    assert (await world.books(b)).problems == []  # no bounty's books see it
    await ledger.halt(world.store, "test")
    with pytest.raises(ledger.InvariantBroken, match="the books sum to 7 msat"):
        await ledger.resume(world.store, "looked at it")
    assert await ledger.halted_reason(world.store) == "test"
