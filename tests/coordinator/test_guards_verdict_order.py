"""The copied-diff rule looks back only: an original judged after its copy was submitted is
not flagged as a copy of the later one; the copy is."""

from __future__ import annotations

from tests.coordinator.conftest import diff_text
from tests.coordinator.test_submissions import _bounty, _finish


async def _judge(coordinator, submission_id: str, error: float) -> dict:
    await _finish(coordinator, "submission_id = ?", (submission_id,), metrics={"error": error}, runs=[{"error": error}])
    await coordinator.reconcile_evaluations()
    return await coordinator.submission_detail(submission_id)


async def test_an_original_judged_after_its_copy_arrived_is_not_flagged(coordinator, bounty_dir):
    bounty_id = await _bounty(coordinator, bounty_dir)
    await _finish(coordinator, "kind = 'baseline' AND bounty_id = ?", (bounty_id,),
                  metrics={"error": 3.0}, spread={"error": 0.0})
    original = await coordinator.submit(bounty_id, "tok-honest", diff_text())
    copy = await coordinator.submit(bounty_id, "tok-thief", diff_text())  # before the original is judged
    judged = await _judge(coordinator, original["id"], 2.9)
    assert judged["status"] == "ACCEPTED", judged
    assert judged["verdict"]["flags"] == []
    copied = await _judge(coordinator, copy["id"], 2.8)
    assert copied["status"] == "FLAGGED", copied
    assert copied["verdict"]["flags"][0]["evidence"]["earlier_submission"] == original["id"]


async def test_a_flagged_copy_with_a_better_score_does_not_become_the_best(coordinator, bounty_dir):
    bounty_id = await _bounty(coordinator, bounty_dir)
    await _finish(coordinator, "kind = 'baseline' AND bounty_id = ?", (bounty_id,),
                  metrics={"error": 3.0}, spread={"error": 0.0})
    original = await coordinator.submit(bounty_id, "tok-honest", diff_text())
    assert (await _judge(coordinator, original["id"], 2.9))["status"] == "ACCEPTED"
    best = await coordinator.store.scalar("SELECT best_json FROM bounties WHERE id = ?", (bounty_id,))
    copy = await coordinator.submit(bounty_id, "tok-thief", diff_text())
    assert (await _judge(coordinator, copy["id"], 2.5))["status"] == "FLAGGED"
    assert await coordinator.store.scalar("SELECT best_json FROM bounties WHERE id = ?", (bounty_id,)) == best
