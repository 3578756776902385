"""Close and cancel, fed the bounty states they must refuse: a CLOSED bounty is not cancelled
(its rest goes back by the close step, after its submissions are paid), a CANCELED one is
not closed."""

from __future__ import annotations

import pytest

from l402tui.coordinator.errors import Conflict
from tests.coordinator.conftest import diff_text
from tests.coordinator.test_submissions import _bounty


async def _status(coordinator, bounty_id: str) -> str:
    return await coordinator.store.scalar("SELECT status FROM bounties WHERE id = ?", (bounty_id,))


async def test_a_closed_bounty_cannot_be_cancelled(coordinator, bounty_dir):
    bounty_id = await _bounty(coordinator, bounty_dir)
    await coordinator.submit(bounty_id, "tok", diff_text())  # still judged: the bounty stays CLOSED
    await coordinator.close_bounty(bounty_id)
    before = await _status(coordinator, bounty_id)
    assert before == "CLOSED"
    with pytest.raises(Conflict) as err:
        await coordinator.cancel_bounty(bounty_id)
    assert err.value.code == "cannot_cancel"
    assert await _status(coordinator, bounty_id) == before


async def test_a_cancelled_bounty_cannot_be_closed(coordinator, bounty_dir):
    bounty_id = await _bounty(coordinator, bounty_dir)
    await coordinator.cancel_bounty(bounty_id)
    with pytest.raises(Conflict) as err:
        await coordinator.close_bounty(bounty_id)
    assert err.value.code == "cannot_close"
    assert await _status(coordinator, bounty_id) == "CANCELED"
