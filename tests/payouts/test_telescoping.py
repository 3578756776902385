"""Payouts telescope: one improvement cut into steps earns what it earns whole, to the msat."""

from __future__ import annotations

import time

from hypothesis import given, settings
from hypothesis import strategies as st
from payouts_world import World

from l402tui.bounty.spec import Metric
from l402tui.coordinator import ledger, payouts
from l402tui.coordinator.payout_math import cumulative_split, split_payout, step_split
from l402tui.evaluation.scoring import metric_gain

ERROR = Metric("error", "minimize", 1.0)
FEE, HOLDBACK = 7.5, 20.0


async def _pay_steps(w: World, agent: str, errors: list[float], *, target: float) -> str:
    """One bounty; ``agent`` reaches each error in turn (baseline 1.0), every step ACCEPTED and paid,
    then every holdback re-evaluated, holding, and released."""
    b = await w.bounty(pool_sats=100_000, target=target)
    subs, best = [], 1.0
    for error in errors:
        s = await w.submit(b, agent, keysend=True)
        await w.verdict(s, "ACCEPTED", improvement=metric_gain(ERROR, error, best), error=error,
                        vs_baseline=metric_gain(ERROR, error, 1.0))
        await payouts.on_accepted(w.store, w.coordinator, w.cfg, s)
        subs.append(s)
        best = error
    later = time.time() + 61
    await payouts.tick(w.store, w.coordinator, w.cfg, at=later)  # stability evaluations queued
    for s, error in zip(subs, errors):
        await w.finish_stability(s, {"error": error}, baseline={"error": 1.0})
    await payouts.tick(w.store, w.coordinator, w.cfg, at=later)  # released and sent
    return b


async def test_one_improvement_in_one_step_or_ten_pays_the_same_to_the_msat(world: World):
    errors = [1.0]
    for _ in range(10):
        errors.append(errors[-1] * 0.95)  # ten steps of 5 % over the previous best: 40.13 % in all
    ten = errors[1:]
    whole = await _pay_steps(world, "agent-1", [ten[-1]], target=0.5)
    sliced = await _pay_steps(world, "agent-2", ten, target=0.5)

    level = metric_gain(ERROR, ten[-1], 1.0)
    expect = cumulative_split(pool_msat=100_000_000, level=level, target=0.5, fee_percent=FEE,
                              holdback_percent=HOLDBACK)
    assert expect.gross_msat == 80_252_612  # docs/payouts.md "Why telescoping"
    one, many = await world.books(whole), await world.books(sliced)
    assert one.problems == [] and many.problems == [] and await ledger.books_balance(world.store) == []
    # What each agent's node received (80 % at once + the released 20 %), the fee, what is left.
    assert await world.received("agent-1") == await world.received("agent-2") == expect.net_msat
    assert one.fees == many.fees == expect.fee_msat
    assert one.pool_left == many.pool_left == 107_500_000 - expect.gross_msat
    assert one.held_back == many.held_back == 0
    # Under the old rule (each step's gain over the best, added up) the slices paid the whole pool.
    old = sum(split_payout(pool_msat=100_000_000, left_msat=100_000_000, improvement=0.05, target=0.5,
                           fee_percent=FEE, holdback_percent=HOLDBACK).gross_msat for _ in ten)
    assert old == 100_000_000 > expect.gross_msat


async def test_a_range_is_paid_once_even_after_its_holdback_is_forfeited(world: World):
    store, ln, cfg = world.store, world.coordinator, world.cfg
    b = await world.bounty(pool_sats=100_000, target=0.05)
    a = await world.submit(b, "agent-1", keysend=True)
    await world.verdict(a, "ACCEPTED", improvement=0.02, error=0.98, vs_baseline=0.02)
    await payouts.on_accepted(store, ln, cfg, a)
    later = time.time() + 61
    await payouts.tick(store, ln, cfg, at=later)
    await world.finish_stability(a, {"error": 1.0}, baseline={"error": 1.0})  # its 2 % vanished
    await payouts.tick(store, ln, cfg, at=later)
    assert (await store.fetchone("SELECT status FROM submissions WHERE id = ?", (a,)))["status"] == \
        "HOLDBACK_FORFEITED"

    # The same 2 % again (a colluding second agent): nothing, with the reason.
    again = await world.submit(b, "agent-2", keysend=True)
    await world.verdict(again, "ACCEPTED", improvement=0.02, error=0.98, vs_baseline=0.02)
    summary = await payouts.on_accepted(store, ln, cfg, again)
    assert summary["payments"] == [] and await world.received("agent-2") == 0
    event = await store.fetchone("SELECT payload_json FROM events WHERE kind = 'payout.allocated' AND subject_id = ?",
                                 (again,))
    assert "already paid for (2.0000%)" in event["payload_json"]

    # 3 % is paid for the range 2 % -> 3 % only: G(3 %) - G(2 %) = 60,000 - 40,000 gross.
    more = await world.submit(b, "agent-3", keysend=True)
    await world.verdict(more, "ACCEPTED", improvement=0.0102, error=0.97, vs_baseline=0.03)
    await payouts.on_accepted(store, ln, cfg, more)
    step = step_split(pool_msat=100_000_000, left_msat=10**12, level_before=0.02, level=0.03, target=0.05,
                      fee_percent=FEE, holdback_percent=HOLDBACK)
    assert step.gross_msat == 20_000_000
    assert await world.received("agent-3") == step.now_msat
    books = await world.books(b)
    assert books.problems == [] and books.fees == 3_000_000 + step.fee_msat


async def test_a_lower_improvement_accepted_after_a_higher_one_is_paid_nothing(world: World):
    store, ln, cfg = world.store, world.coordinator, world.cfg
    b = await world.bounty(pool_sats=100_000, target=0.05)
    high, low = await world.submit(b, "agent-1", keysend=True), await world.submit(b, "agent-2", keysend=True)
    # Both judged against the same best, accepted in this order.
    await world.verdict(high, "ACCEPTED", improvement=0.03, error=0.97, vs_baseline=0.03)
    await world.verdict(low, "ACCEPTED", improvement=0.02, error=0.98, vs_baseline=0.02)
    await payouts.on_accepted(store, ln, cfg, high)
    await payouts.on_accepted(store, ln, cfg, low)
    assert await world.received("agent-2") == 0
    assert (await world.books(b)).fees == 4_500_000  # 7.5 % of G(3 %) = 60,000 sats, once


levels = st.floats(min_value=-0.05, max_value=0.2, allow_nan=False, allow_infinity=False)


@settings(max_examples=300, deadline=None)
@given(steps=st.lists(levels, min_size=1, max_size=25), pool=st.integers(1, 10**11),
       target=st.floats(min_value=0.001, max_value=0.9), fee=st.sampled_from([0.0, 2.5, 7.5, 33.3]),
       holdback=st.sampled_from([0.0, 20.0, 50.0, 100.0]), short=st.sampled_from([0.0, 0.0, 0.3, 0.9, 1.0]))
def test_steps_never_pay_more_than_the_whole_step_nor_the_pool(steps, pool, target, fee, holdback, short):
    """Any sequence of accepted levels (out of order, repeated, negative, past the target), paid
    in turn from a pool that shrinks: never more than the best level paid whole, never the pool,
    and exactly that when the pool was never short (``short``: a share already gone)."""
    kw = dict(pool_msat=pool, target=target, fee_percent=fee, holdback_percent=holdback)
    level, left = 0.0, pool - int(pool * short)
    cash = left
    total = [0, 0, 0, 0]
    for new in steps:
        s = step_split(left_msat=left, level_before=level, level=new, **kw)
        parts = (s.gross_msat, s.fee_msat, s.now_msat, s.holdback_msat)
        assert min(parts) >= 0 and s.fee_msat + s.now_msat + s.holdback_msat == s.gross_msat
        total = [t + p for t, p in zip(total, parts)]
        left -= s.gross_msat
        level = max(level, new)
    whole = cumulative_split(level=max(0.0, max(steps)), **kw)
    assert total[0] <= whole.gross_msat <= pool and total[0] <= cash and left >= 0
    if short == 0:
        assert total == [whole.gross_msat, whole.fee_msat, whole.now_msat, whole.holdback_msat]
