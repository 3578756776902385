"""The sponsor's word on gaming is taken only for a FLAGGED submission: fed the statuses
that never await it."""

from __future__ import annotations

import pytest
from payouts_world import World

from l402tui.coordinator import payouts
from l402tui.coordinator.errors import Conflict


@pytest.mark.parametrize("status", ["ACCEPTED", "REJECTED", "QUEUED"])
async def test_a_gaming_decision_on_a_submission_that_is_not_flagged_is_refused(world: World, status):
    b = await world.bounty(stake_sats=1_000)
    s = await world.submit(b, "agent-1", stake_sats=1_000)
    if status != "QUEUED":
        await world.verdict(s, status, 0.02 if status == "ACCEPTED" else 0.0)
    with pytest.raises(Conflict) as err:
        await payouts.confirm_gaming(world.store, world.coordinator, world.cfg, s, True)
    assert err.value.code == "not_flagged"
    assert await world.store.fetchall("SELECT * FROM events WHERE kind = 'stake.sponsor_decision'") == []
    assert (await world.books(b)).stakes_kept == 0
