"""Held-out evaluations are rationed by money, counted inside the transaction, and a
verdict shows (and acts) only at the end of its time class."""

from __future__ import annotations

import asyncio
import time

import pytest

from l402tui.bounty import load_bounty
from l402tui.coordinator import disclosure, rationing
from l402tui.coordinator.errors import LimitReached
from tests.coordinator.conftest import diff_text, make_bounty
from tests.coordinator.test_submissions import _finish


async def _open(coordinator, folder) -> str:
    return (await coordinator.create_bounty(folder, self_funded=True))["bounty"]["id"]


async def test_daily_limit_holds_under_20_concurrent_submits(coordinator, bounty_dir):
    coordinator.cfg = coordinator.cfg.with_overrides({"coordinator.submissions_per_day": 5})
    bounty_id = await _open(coordinator, bounty_dir)
    diffs = [diff_text().replace("OFFSET = 1", f"OFFSET = {i + 10}") for i in range(20)]
    results = await asyncio.gather(*(coordinator.submit(bounty_id, "one-token", d) for d in diffs),
                                   return_exceptions=True)
    accepted = [r for r in results if isinstance(r, dict)]
    refused = [r for r in results if isinstance(r, LimitReached)]
    assert len(accepted) == 5 and len(refused) == 15, results
    assert await coordinator.store.scalar("SELECT COUNT(*) FROM submissions WHERE token_id = 'one-token'") == 5


def test_stake_grows_with_evaluations_served(tmp_path):
    spec = load_bounty(make_bounty(tmp_path, stake_sats=100))
    assert spec.free_evaluations_per_day == 10
    stakes = [rationing.required_stake_sats(spec, 100_000, n) for n in (0, 9, 10, 19, 20, 35)]
    # 1 % of the pool more per further block of 10 evaluations in the window.
    assert stakes == [100, 100, 1_100, 1_100, 2_100, 3_100]
    # k probes past the free ones cost about step·k²/(2·free): 1,000 a day on a 100k pool
    # put ~50 M sats at stake, about 500 pools.
    total = sum(rationing.required_stake_sats(spec, 100_000, n) for n in range(1_000))
    assert total > 490 * 100_000


async def test_past_the_free_evaluations_a_submission_needs_a_stake(coordinator, tmp_path):
    folder = make_bounty(tmp_path / "sponsor")
    text = (folder / "bounty.toml").read_text()
    (folder / "bounty.toml").write_text(text + "\n[rationing]\nfree_evaluations_per_day = 2\nstake_sats = 700\n")
    bounty_id = await _open(coordinator, folder)
    first = await coordinator.submit(bounty_id, "t1", diff_text().replace("OFFSET = 1", "OFFSET = 11"))
    second = await coordinator.submit(bounty_id, "t2", diff_text().replace("OFFSET = 1", "OFFSET = 12"))
    assert first["status"] == second["status"] == "QUEUED" and "stake" not in first
    # A fresh token changes nothing: the bounty's evaluations are what is counted.
    third = await coordinator.submit(bounty_id, "t3", diff_text().replace("OFFSET = 1", "OFFSET = 13"))
    assert third["status"] == "AWAITING_STAKE" and third["stake"]["amount_sats"] == 700


def test_time_classes():
    assert disclosure.reveal_at(100.0, 101.0, 30.0) == 130.0
    assert disclosure.reveal_at(100.0, 130.0, 30.0) == 130.0
    assert disclosure.reveal_at(100.0, 131.0, 30.0) == 160.0
    assert disclosure.reveal_at(100.0, 200.0, 30.0) == 220.0
    assert disclosure.reveal_at(100.0, 220.5, 30.0) == 340.0
    assert disclosure.reveal_at(100.0, 105.0, 0.0) == 105.0
    # Any decision time in a class gives the same reveal time: only the class is learnt.
    assert len({disclosure.reveal_at(0.0, t / 10, 30.0) for t in range(610, 1200)}) == 1


async def test_a_verdict_shows_and_acts_only_at_the_end_of_its_class(coordinator, tmp_path, net):
    coordinator.cfg = coordinator.cfg.with_overrides({"coordinator.verdict_quantum_s": 2.0})
    bounty_id = await _open(coordinator, make_bounty(tmp_path / "sponsor", stake_sats=500))
    view = await coordinator.submit(bounty_id, "tok", diff_text())
    await net.node("agent-1").pay(view["stake"]["invoice"])
    await coordinator.reconcile_invoices()
    assert (await coordinator.submission(view["id"]))["status"] == "QUEUED"
    await _finish(coordinator, "kind = 'baseline' AND bounty_id = ?", (bounty_id,), metrics={"error": 3.0})
    await _finish(coordinator, "submission_id = ?", (view["id"],), metrics={"error": 9.0}, runs=[{"error": 9.0}])
    started = time.time()
    await coordinator.reconcile_evaluations()
    assert (await coordinator.submission_detail(view["id"]))["status"] == "REJECTED"
    hidden = await coordinator.submission(view["id"])
    assert hidden["status"] == "QUEUED" and hidden["verdict"] is None and hidden["reasons"] == []
    stake = await coordinator.store.fetchone("SELECT status FROM invoices WHERE kind = 'stake'")
    assert stake["status"] == "ACCEPTED"  # still held: its resolution would tell the agent
    while time.time() - started < 5:
        await coordinator.reconcile_evaluations()
        if (await coordinator.submission(view["id"]))["status"] == "REJECTED":
            break
        await asyncio.sleep(0.1)
    shown = await coordinator.submission(view["id"])
    assert shown["status"] == "REJECTED" and shown["reasons"] == ["below_threshold"]
    created = await coordinator.store.scalar("SELECT created_at FROM submissions WHERE id = ?", (view["id"],))
    assert time.time() >= created + 2.0
    stake = await coordinator.store.fetchone("SELECT status FROM invoices WHERE kind = 'stake'")
    assert stake["status"] != "ACCEPTED"  # resolved once revealed


async def test_accepted_best_is_published_rounded(coordinator, bounty_dir):
    bounty_id = await _open(coordinator, bounty_dir)
    sub = await coordinator.submit(bounty_id, "tok", diff_text())
    await _finish(coordinator, "kind = 'baseline' AND bounty_id = ?", (bounty_id,), metrics={"error": 3.0},
                  spread={"error": 0.07})
    await _finish(coordinator, "submission_id = ?", (sub["id"],), metrics={"error": 2.0137},
                  runs=[{"error": 2.0137}])
    await coordinator.reconcile_evaluations()
    view = await coordinator.submission(sub["id"])
    published = view["verdict"]["published"]
    # step = k·σ/baseline = 2·0.07/3 ≈ 4.67 %: the score is a multiple of 0.14, the improvement of the step.
    assert published["score_step"] == pytest.approx(0.14)
    assert published["score"] == pytest.approx(14 * 0.14)  # 2.0137 to the nearest step
    assert published["improvement"] == pytest.approx(7 * 2 * 0.07 / 3)  # 32.9 % floored to 7 steps, 32.7 %
    detail = await coordinator.submission_detail(sub["id"])
    assert detail["verdict"]["improvement_vs_baseline_measured"] == pytest.approx((3.0 - 2.0137) / 3.0)
    board = await coordinator.leaderboard(bounty_id)
    assert board[0]["score"] == published["score"] and "2.0137" not in str(board)
