"""One "pool left": the service's bounty view and the payouts engine agree, and a hold-funded
pool never shows the funding's fee margin as money agents could still earn."""

from __future__ import annotations

from payouts_world import World

from l402tui.coordinator import ledger, payouts
from l402tui.coordinator.payout_funding import pool_left
from l402tui.coordinator.service import Coordinator


async def _shown(world: World, b: str) -> tuple[int, int, int]:
    view = await Coordinator(world.cfg, world.store, world.coordinator).get_bounty(b)
    row = await world.store.fetchone("SELECT * FROM bounties WHERE id = ?", (b,))
    return view["pool_left_sats"] * 1000, await pool_left(world.store, b), await pool_left(world.store, row)


async def test_pool_left_is_one_number_before_and_after_payouts(world: World):
    b = await world.bounty(pool_sats=100_000)  # held: 100,000 pool + 7,500 fee
    assert await _shown(world, b) == (100_000_000,) * 3
    s = await world.submit(b, "agent-1", keysend=True)
    await world.verdict(s, "ACCEPTED", 0.02)  # 0.02 of a 0.05 target: 40 % of the pool
    await payouts.on_accepted(world.store, world.coordinator, world.cfg, s)
    assert await _shown(world, b) == (60_000_000,) * 3
    # The pool account also holds the fee margin; that is not "left" for agents.
    assert await ledger.balance(world.store, ledger.pool(b)) == 67_500_000


async def test_an_unfunded_or_cancelled_bounty_has_nothing_left_once_it_cannot_open(world: World):
    b = await world.bounty(pay=False)
    assert await _shown(world, b) == (100_000_000,) * 3  # AWAITING_FUNDING: the pool on offer
    await Coordinator(world.cfg, world.store, world.coordinator).cancel_bounty(b)
    assert await _shown(world, b) == (0, 0, 0)
