"""Identical held-out outputs to an earlier ACCEPTED submission mean the same predictions:
the later one is flagged, even when its measured score is better."""

from __future__ import annotations

import json
import time

from tests.coordinator.conftest import diff_text
from tests.coordinator.test_submissions import _bounty, _finish


async def _judge(coordinator, submission_id: str, error: float, outputs: str) -> dict:
    eval_id = await coordinator.store.scalar("SELECT id FROM evaluations WHERE submission_id = ?", (submission_id,))
    async with coordinator.store.transaction() as txn:
        await txn.execute("UPDATE evaluations SET status = 'DONE', metrics_json = ?, spread_json = '{}', "
                          "finished_at = ? WHERE id = ?", (json.dumps({"error": error}), time.time(), eval_id))
        await txn.insert("eval_runs", {"evaluation_id": eval_id, "repeat": 0,
                                       "metrics_json": json.dumps({"error": error}), "outputs_sha256": outputs})
    await coordinator.reconcile_evaluations()
    return await coordinator.submission_detail(submission_id)


async def test_the_same_outputs_as_an_accepted_submission_are_flagged(coordinator, bounty_dir):
    bounty_id = await _bounty(coordinator, bounty_dir)
    await _finish(coordinator, "kind = 'baseline' AND bounty_id = ?", (bounty_id,),
                  metrics={"error": 3.0}, spread={"error": 0.0})
    first = await coordinator.submit(bounty_id, "tok-a", diff_text())
    assert (await _judge(coordinator, first["id"], 2.9, "ab" * 32))["status"] == "ACCEPTED"
    second = await coordinator.submit(bounty_id, "tok-a", diff_text().replace("OFFSET = 1", "OFFSET = 0"))
    judged = await _judge(coordinator, second["id"], 2.7, "ab" * 32)
    assert judged["status"] == "FLAGGED", judged
    assert judged["verdict"]["flags"][0]["evidence"]["earlier_submission"] == first["id"]
