"""What submit() refuses before anything is stored: an OPEN bounty past its deadline (the
close step may not have run yet)."""

from __future__ import annotations

import time

import pytest

from l402tui.coordinator.errors import Conflict
from tests.coordinator.conftest import diff_text
from tests.coordinator.test_submissions import _bounty


async def test_an_open_bounty_past_its_deadline_takes_no_submission(coordinator, bounty_dir):
    bounty_id = await _bounty(coordinator, bounty_dir)
    async with coordinator.store.transaction() as txn:
        await txn.execute("UPDATE bounties SET deadline = ? WHERE id = ?", (time.time() - 1, bounty_id))
    with pytest.raises(Conflict) as err:
        await coordinator.submit(bounty_id, "tok", diff_text())
    assert err.value.code == "deadline_passed"
    assert await coordinator.store.scalar("SELECT COUNT(*) FROM submissions WHERE bounty_id = ?", (bounty_id,)) == 0


async def test_a_stake_that_rose_while_submitting_is_refused_not_undercharged(coordinator, bounty_dir, monkeypatch):
    """Between the stake quoted (no evaluation served yet: free) and the insert, other
    submissions filled the free evaluations: the submission would be queued without the
    stake it now needs, so it is refused and the agent submits again."""
    from l402tui.coordinator import rationing

    bounty_id = await _bounty(coordinator, bounty_dir)
    real = rationing.evaluations_in_window
    calls = []

    async def racing(db, bid, now):
        calls.append(bid)
        served = await real(db, bid, now)
        return served if len(calls) == 1 else served + 1_000  # others were queued meanwhile

    monkeypatch.setattr(rationing, "evaluations_in_window", racing)
    with pytest.raises(Conflict) as err:
        await coordinator.submit(bounty_id, "tok", diff_text())
    assert err.value.code == "stake_changed"
    assert len(calls) == 2
    assert await coordinator.store.scalar("SELECT COUNT(*) FROM submissions WHERE bounty_id = ?", (bounty_id,)) == 0


async def test_without_a_measured_baseline_a_submission_is_rejected_not_judged(coordinator, bounty_dir):
    from tests.coordinator.test_submissions import _finish

    bounty_id = await _bounty(coordinator, bounty_dir)
    sub = await coordinator.submit(bounty_id, "tok", diff_text())  # queued behind the baseline
    await _finish(coordinator, "kind = 'baseline' AND bounty_id = ?", (bounty_id,), status="FAILED",
                  error="the baseline crashed")
    await _finish(coordinator, "submission_id = ?", (sub["id"],), metrics={"error": 0.1}, runs=[{"error": 0.1}])
    await coordinator.reconcile_evaluations()
    detail = await coordinator.submission_detail(sub["id"])
    assert detail["status"] == "REJECTED", detail
    assert detail["verdict"]["codes"] == ["baseline_unavailable"]
