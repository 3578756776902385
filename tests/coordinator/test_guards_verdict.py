"""The copied-diff rule, fed the resubmission it exists for.

Another token's earlier diff, resubmitted as is, is flagged and earns nothing; an agent's
own earlier diffs through the same token are its own work and are judged on their score,
except the very same code measured again, whose gain can only be noise.
"""

from __future__ import annotations

from tests.coordinator.conftest import diff_text
from tests.coordinator.test_submissions import _bounty, _finish


async def _judged(coordinator, bounty_id: str, token: str, diff: str, error: float) -> dict:
    sub = await coordinator.submit(bounty_id, token, diff)
    await _finish(coordinator, "submission_id = ?", (sub["id"],), metrics={"error": error}, runs=[{"error": error}])
    await coordinator.reconcile_evaluations()
    return await coordinator.submission_detail(sub["id"])


async def test_another_tokens_diff_resubmitted_is_flagged_and_the_same_tokens_is_not(coordinator, bounty_dir):
    bounty_id = await _bounty(coordinator, bounty_dir)
    await _finish(coordinator, "kind = 'baseline' AND bounty_id = ?", (bounty_id,),
                  metrics={"error": 3.0}, spread={"error": 0.0})
    theirs = diff_text()
    mine = diff_text().replace("OFFSET = 1", "OFFSET = 0")

    # The thief's copy scores better than the original (a lucky repeat): still flagged.
    original = await _judged(coordinator, bounty_id, "tok-honest", theirs, 2.9)
    assert original["status"] == "ACCEPTED", original
    copied = await _judged(coordinator, bounty_id, "tok-thief", theirs, 2.8)
    assert copied["status"] == "FLAGGED", copied
    flag = copied["verdict"]["flags"][0]
    assert flag["kind"] == "near_duplicate" and flag["evidence"]["earlier_submission"] == original["id"]

    # The honest agent's own second diff: its own work, never "copied".
    first = await _judged(coordinator, bounty_id, "tok-honest", mine, 2.7)
    assert first["status"] == "ACCEPTED", first
    assert first["verdict"]["flags"] == []


async def test_the_same_code_measured_again_earns_nothing(coordinator, bounty_dir):
    # Re-rolling the current best (or a rejected diff) until a lucky measurement clears the
    # bar: the same token, the same code (reworded), a "better" score that is only noise.
    bounty_id = await _bounty(coordinator, bounty_dir)
    await _finish(coordinator, "kind = 'baseline' AND bounty_id = ?", (bounty_id,),
                  metrics={"error": 3.0}, spread={"error": 0.0})
    mine = diff_text()
    best = await _judged(coordinator, bounty_id, "tok-a", mine, 2.7)
    assert best["status"] == "ACCEPTED", best
    rolled = await _judged(coordinator, bounty_id, "tok-a", mine.replace("+OFFSET = 1", "+OFFSET  =  1"), 2.4)
    assert rolled["status"] == "FLAGGED", rolled
    flag = rolled["verdict"]["flags"][0]
    assert flag["kind"] == "near_duplicate" and flag["evidence"]["earlier_submission"] == best["id"]
    # A real change of its own is judged on its score.
    changed = await _judged(coordinator, bounty_id, "tok-a", mine.replace("+OFFSET = 1", "+OFFSET = 2"), 2.1)
    assert changed["status"] == "ACCEPTED", changed
