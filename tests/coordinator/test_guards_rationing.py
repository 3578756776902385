"""What the rationing counts: held-out evaluations of submissions queued for the bounty in
the last 24 hours, and nothing else (stability re-evaluations and baseline re-measurements
are the coordinator's own, older ones have left the window, other bounties are theirs)."""

from __future__ import annotations

import time

import pytest

from l402tui.coordinator import rationing
from l402tui.store import Store


@pytest.fixture
async def store(tmp_path):
    s = await Store.open(tmp_path / "db.sqlite")
    yield s
    await s.close()


async def test_only_submission_evaluations_of_the_bounty_in_the_last_24_hours_count(store):
    t = time.time()
    rows = [("b1", "submission", t - 5), ("b1", "submission", t - 3_600), ("b1", "submission", t - 23.9 * 3600),
            ("b1", "stability", t - 5), ("b1", "stability", t - 60), ("b1", "submission", t - 24.1 * 3600),
            ("b2", "submission", t - 5)]
    async with store.transaction() as txn:
        for bounty_id, kind, at in rows:
            await txn.insert("evaluations", {"bounty_id": bounty_id, "submission_id": None, "kind": kind,
                                             "heldout_set": 0, "status": "DONE", "created_at": at})
    assert await rationing.evaluations_in_window(store, "b1", t) == 3
    assert await rationing.evaluations_in_window(store, "b2", t) == 1
