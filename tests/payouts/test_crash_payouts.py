"""kill -9 the coordinator at random points of the pay path (a few runs here; 100 in
bench/crash_payouts.py): zero double payments, zero lost submissions, balanced books, and
rejected stakes settled in part with the rest paid back once, whatever the kill hit."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest
from crash_harness import REJECTED, ROOT, WORKER, one_run
from payouts_world import World

from l402tui.coordinator import ledger


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
def test_kill_9_during_payouts_never_pays_twice(tmp_path, seed):
    run = one_run(tmp_path, seed, submissions=6, max_kills=3)
    assert run.kills >= 1  # the harness really killed the process
    assert run.problems == []
    assert run.double_payments == 0
    assert run.lost_submissions == 0
    assert run.payments_owed == run.payments_complete == 6  # every 80 % payout went out exactly once
    assert run.stakes_resolved == REJECTED  # each rejected stake kept in part, the rest paid back once


async def _one_rejected_stake(data_dir) -> str:
    w = await World.open(data_dir)
    try:
        b = await w.bounty(stake_sats=1_000)
        s = await w.submit(b, "agent-1", stake_sats=1_000)  # no node id: the rest is claimed
        await w.verdict(s, "REJECTED", improvement=0.0001)
        return s
    finally:
        await w.close()


def _worker(data_dir, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(WORKER), str(data_dir)], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **env}, cwd=ROOT)


@pytest.mark.slow
def test_kill_9_right_after_the_stake_hold_is_settled(tmp_path):
    s = asyncio.run(_one_rejected_stake(tmp_path))
    died = _worker(tmp_path, L402TUI_TEST_DIE_AFTER="settle_hold")
    assert died.returncode == -9 and "DONE" not in died.stdout

    async def between():
        w = await World.open(tmp_path, create=False)
        try:
            inv = await w.store.fetchone("SELECT * FROM invoices WHERE submission_id = ?", (s,))
            node = await w.coordinator.lookup_invoice(inv["payment_hash"])
            return inv["status"], node.state.value, await ledger.posted(w.store, f"stake_keep:{s}")
        finally:
            await w.close()
    assert asyncio.run(between()) == ("ACCEPTED", "SETTLED", False)  # settled on the node, not on the books

    done = _worker(tmp_path)
    assert done.returncode == 0 and "DONE" in done.stdout, done.stderr[-2000:]

    async def after():
        w = await World.open(tmp_path, create=False)
        try:
            b = (await w.store.fetchone("SELECT bounty_id FROM submissions WHERE id = ?", (s,)))["bounty_id"]
            books = await w.books(b)
            refunds = await w.store.fetchall("SELECT status FROM payments WHERE purpose = 'stake_refund'")
            return books, refunds, await w.received("agent-1")
        finally:
            await w.close()
    books, refunds, received = asyncio.run(after())
    assert books.problems == [] and books.stakes_kept == 500_000 and books.stakes_returned == 500_000
    assert [r["status"] for r in refunds] == ["COMPLETE"] and received == 500_000  # the rest, once
