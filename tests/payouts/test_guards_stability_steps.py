"""The holdback timer's steps, each fed the case its guard exists for: not before it is due,
on another held-out set than the one that accepted it, a baseline failing once is measured
again (not waved through), a stability run that cannot be scored forfeits."""

from __future__ import annotations

import time

from payouts_world import World

from l402tui.coordinator import payouts, stability


async def _accepted(world: World) -> tuple[str, str]:
    b = await world.bounty()
    s = await world.submit(b, "agent-1", keysend=True)
    await world.verdict(s, "ACCEPTED", 0.02, error=0.98)
    await payouts.on_accepted(world.store, world.coordinator, world.cfg, s)
    return b, s


async def _stability_rows(world: World, b: str) -> list[dict]:
    return await world.store.fetchall("SELECT * FROM evaluations WHERE bounty_id = ? AND kind = 'stability' "
                                      "ORDER BY id", (b,))


async def _decisions(world: World, s: str) -> list[str]:
    return [r["kind"] for r in await world.store.fetchall(
        "SELECT kind FROM events WHERE subject_id = ? AND kind IN ('holdback.released', 'holdback.forfeited')", (s,))]


async def test_nothing_is_re_evaluated_before_the_timer_is_due(world: World):
    b, s = await _accepted(world)
    timer = await world.store.fetchone("SELECT due_at FROM timers WHERE kind = ? AND subject_id = ?",
                                       (stability.TIMER, s))
    assert await stability.run_due(world.store, world.cfg, at=timer["due_at"] - 1) == 0
    assert await _stability_rows(world, b) == []
    await stability.run_due(world.store, world.cfg, at=timer["due_at"])
    assert [r["submission_id"] for r in await _stability_rows(world, b)] == [s, None]


async def test_the_re_evaluation_runs_on_another_held_out_set_than_the_verdict(world: World):
    b, s = await _accepted(world)
    async with world.store.transaction() as txn:  # the verdict was measured on set 1 (of 2)
        await txn.insert("evaluations", {"bounty_id": b, "submission_id": s, "kind": "submission", "heldout_set": 1,
                                         "status": "DONE", "created_at": time.time()})
    await payouts.tick(world.store, world.coordinator, world.cfg, at=time.time() + 61)
    assert {r["heldout_set"] for r in await _stability_rows(world, b)} == {0}


async def test_a_baseline_that_failed_once_is_measured_again_not_waved_through(world: World):
    b, s = await _accepted(world)
    later = time.time() + 61
    await payouts.tick(world.store, world.coordinator, world.cfg, at=later)
    async with world.store.transaction() as txn:
        await txn.execute("UPDATE evaluations SET status = 'DONE', metrics_json = '{\"error\": 1.0}' "
                          "WHERE submission_id = ? AND kind = 'stability'", (s,))  # its gain vanished
        await txn.execute("UPDATE evaluations SET status = 'FAILED', error = 'crashed' "
                          "WHERE submission_id IS NULL AND kind = 'stability'")
    await payouts.tick(world.store, world.coordinator, world.cfg, at=later)
    assert await _decisions(world, s) == []
    rows = await _stability_rows(world, b)
    assert [(r["submission_id"], r["status"]) for r in rows if r["submission_id"] is None] == [
        (None, "FAILED"), (None, "QUEUED")]
    async with world.store.transaction() as txn:
        await txn.execute("UPDATE evaluations SET status = 'DONE', metrics_json = '{\"error\": 1.0}' "
                          "WHERE submission_id IS NULL AND kind = 'stability' AND status = 'QUEUED'")
    await payouts.tick(world.store, world.coordinator, world.cfg, at=later)
    assert await _decisions(world, s) == ["holdback.forfeited"]


async def test_a_stability_run_missing_the_metric_forfeits_the_holdback(world: World):
    b, s = await _accepted(world)
    later = time.time() + 61
    await payouts.tick(world.store, world.coordinator, world.cfg, at=later)
    await world.finish_stability(s, {"accuracy": 0.99})  # no 'error': it cannot be scored
    await payouts.tick(world.store, world.coordinator, world.cfg, at=later)
    assert await _decisions(world, s) == ["holdback.forfeited"]
    reason = await world.store.scalar("SELECT json_extract(payload_json, '$.reason') FROM events "
                                      "WHERE kind = 'holdback.forfeited' AND subject_id = ?", (s,))
    assert "cannot be scored" in reason and "error" in reason
    assert (await world.books(b)).held_back == 0
