"""Submissions through the service: intake checks, the daily limit, stakes, verdicts from evaluation rows.

The evaluation queue runs apart from the service (a worker process reading and writing
rows); these tests write the rows it writes (status, medians, spreads, per-repeat metrics)
and check what the coordinator makes of them.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from l402tui.coordinator.errors import Conflict, Invalid, LimitReached
from tests.coordinator.conftest import diff_text, make_bounty


async def _bounty(coordinator, folder):
    return (await coordinator.create_bounty(folder, self_funded=True))["bounty"]["id"]


async def _finish(coordinator, where: str, params, status="DONE", metrics=None, spread=None, runs=None, error=None,
                  public=None):
    eval_id = await coordinator.store.scalar(f"SELECT id FROM evaluations WHERE {where}", params)
    async with coordinator.store.transaction() as txn:
        await txn.execute("UPDATE evaluations SET status = ?, metrics_json = ?, spread_json = ?, error = ?, "
                          "public_metrics_json = ?, finished_at = ? WHERE id = ?",
                          (status, json.dumps(metrics) if metrics else None, json.dumps(spread or {}), error,
                           json.dumps(public) if public else None, time.time(), eval_id))
        for i, m in enumerate(runs or []):
            await txn.insert("eval_runs", {"evaluation_id": eval_id, "repeat": i, "metrics_json": json.dumps(m)})
    return eval_id


async def test_intake_refuses_bad_diffs_with_reasons(coordinator, bounty_dir):
    bounty_id = await _bounty(coordinator, bounty_dir)
    bad = diff_text().replace("solve.py", "other.py")
    with pytest.raises(Invalid) as err:
        await coordinator.submit(bounty_id, "t1", bad)
    assert err.value.code == "diff_refused" and "other.py" in err.value.message
    with pytest.raises(Invalid):
        await coordinator.submit(bounty_id, "t1", "just some text")
    escape = diff_text().replace("a/solve.py", "a/../../etc/passwd").replace("b/solve.py", "b/../../etc/passwd")
    with pytest.raises(Invalid) as err:
        await coordinator.submit(bounty_id, "t1", escape)
    assert "inside target" in err.value.message or "escape" in err.value.message or ".." in err.value.message


async def test_daily_limit_per_token_per_bounty(coordinator, bounty_dir):
    coordinator.cfg = coordinator.cfg.with_overrides({"coordinator.submissions_per_day": 2})
    bounty_id = await _bounty(coordinator, bounty_dir)
    for _ in range(2):
        assert (await coordinator.submit(bounty_id, "tok-a", diff_text()))["status"] == "QUEUED"
    with pytest.raises(LimitReached) as err:
        await coordinator.submit(bounty_id, "tok-a", diff_text())
    assert 0 < err.value.retry_after_s <= 86_401
    assert (await coordinator.submit(bounty_id, "tok-b", diff_text()))["status"] == "QUEUED"  # another token


async def test_stake_is_held_before_queueing(coordinator, tmp_path, net):
    bounty_id = await _bounty(coordinator, make_bounty(tmp_path, stake_sats=500))
    view = await coordinator.submit(bounty_id, "tok", diff_text(), payout_destination="agent-1")
    assert view["status"] == "AWAITING_STAKE" and view["stake"]["amount_sats"] == 500
    assert await coordinator.store.scalar("SELECT COUNT(*) FROM evaluations WHERE kind = 'submission'") == 0
    await coordinator.start()
    await net.node("agent-1").pay(view["stake"]["invoice"])
    for _ in range(300):  # up to 15 s on a loaded machine
        if (await coordinator.submission(view["id"]))["status"] == "QUEUED":
            break
        await asyncio.sleep(0.05)
    assert (await coordinator.submission(view["id"]))["status"] == "QUEUED"
    assert await coordinator.store.scalar("SELECT COUNT(*) FROM evaluations WHERE kind = 'submission'") == 1


async def test_unpaid_stake_ends_the_submission(coordinator, tmp_path, net):
    bounty_id = await _bounty(coordinator, make_bounty(tmp_path, stake_sats=500))
    view = await coordinator.submit(bounty_id, "tok", diff_text())
    await coordinator.backend.cancel_hold(view["stake"]["payment_hash"])
    await coordinator.reconcile_invoices()
    ended = await coordinator.submission(view["id"])
    assert ended["status"] == "REJECTED" and ended["reasons"] == ["stake_lapsed"]
    assert "stake invoice" in (await coordinator.submission_detail(view["id"]))["reasons"][0]


async def test_verdicts_stack_and_flag(coordinator, bounty_dir):
    bounty_id = await _bounty(coordinator, bounty_dir)
    first = await coordinator.submit(bounty_id, "tok-a", diff_text())
    await _finish(coordinator, "kind = 'baseline' AND bounty_id = ?", (bounty_id,),
                  metrics={"error": 3.0}, spread={"error": 0.0})
    # RUNNING shows as EVALUATING to the operator; the agent reads QUEUED until its verdict.
    async with coordinator.store.transaction() as txn:
        await txn.execute("UPDATE evaluations SET status = 'RUNNING' WHERE submission_id = ?", (first["id"],))
    await coordinator.reconcile_evaluations()
    assert (await coordinator.submission_detail(first["id"]))["status"] == "EVALUATING"
    assert (await coordinator.submission(first["id"]))["status"] == "QUEUED"
    assert (await coordinator.get_bounty(bounty_id))["baseline"]["metrics"] == {"error": 3.0}
    await _finish(coordinator, "submission_id = ?", (first["id"],), metrics={"error": 2.7},
                  runs=[{"error": 2.7}])
    await coordinator.reconcile_evaluations()
    accepted = await coordinator.submission(first["id"])
    assert accepted["status"] == "ACCEPTED", accepted
    # Published on the ladder: the improvement floored to the step (max(min_improvement, k·σ)).
    published = accepted["verdict"]["published"]
    assert accepted["verdict"]["improvement"] == published["improvement"] <= 0.1
    assert published["improvement"] > 0.1 - published["improvement_step"]
    assert (await coordinator.submission_detail(first["id"]))["verdict"]["improvement"] == pytest.approx(0.1)
    best = (await coordinator.get_bounty(bounty_id))["best"]
    assert best["submission_id"] == first["id"] and best["published"] == published
    board = await coordinator.leaderboard(bounty_id)
    assert [e["submission_id"] for e in board] == [first["id"]]

    # Same score as the current best: no improvement, rejected with the reason.
    second = await coordinator.submit(bounty_id, "tok-b", diff_text().replace("OFFSET = 1", "OFFSET = 2"))
    await _finish(coordinator, "submission_id = ?", (second["id"],), metrics={"error": 2.7})
    await coordinator.reconcile_evaluations()
    rejected = await coordinator.submission(second["id"])
    assert rejected["status"] == "REJECTED" and rejected["reasons"] == ["below_threshold"]
    assert rejected["verdict"] == {"decision": "REJECTED", "reasons": ["below_threshold"], "improvement": None,
                                   "published": None}
    assert "current best" in (await coordinator.submission_detail(second["id"]))["reasons"][0]

    # Hard-coded public answers show up as canary matches: flagged.
    third = await coordinator.submit(bounty_id, "tok-c", diff_text().replace("OFFSET = 1", "OFFSET = 0"))
    await _finish(coordinator, "submission_id = ?", (third["id"],), metrics={"error": 0.0},
                  runs=[{"error": 0.0, "canary_matches": 2}])
    await coordinator.reconcile_evaluations()
    flagged = await coordinator.submission(third["id"])
    assert flagged["status"] == "FLAGGED" and flagged["reasons"] == ["flagged:canary"]

    # A crashed evaluation rejects with its error; replaying changes nothing.
    fourth = await coordinator.submit(bounty_id, "tok-d", diff_text().replace("OFFSET = 1", "OFFSET = 5"))
    await _finish(coordinator, "submission_id = ?", (fourth["id"],), status="FAILED", error="run phase timed out")
    assert await coordinator.reconcile_evaluations() == 1
    assert await coordinator.reconcile_evaluations() == 0
    failed = await coordinator.submission(fourth["id"])
    # The agent learns a code; the error text (which a run can shape) stays with the operator.
    assert failed["status"] == "REJECTED" and failed["reasons"] == ["internal_error"]
    assert "timed out" in (await coordinator.submission_detail(fourth["id"]))["reasons"][0]
    statuses = [e["payload"]["status"] for e in await coordinator.events_after(0, 1000)
                if e["kind"] == "submission.status" and e["subject_id"] == first["id"]]
    assert statuses == ["RECEIVED", "QUEUED", "EVALUATING", "ACCEPTED"]


async def test_closed_bounty_takes_no_submissions(coordinator, bounty_dir):
    bounty_id = await _bounty(coordinator, bounty_dir)
    await coordinator.close_bounty(bounty_id)
    with pytest.raises(Conflict):
        await coordinator.submit(bounty_id, "tok", diff_text())


async def test_real_evaluation_worker_drives_baseline_and_verdict(coordinator, bounty_dir):
    """The real evaluation worker (local sandbox, real subprocesses) against the service's rows."""
    from l402tui.evaluation.worker import run_worker

    coordinator.cfg = coordinator.cfg.with_overrides({"evaluation.sandbox": "local",
                                                      "evaluation.allow_unsandboxed": True})
    bounty_id = await _bounty(coordinator, bounty_dir)
    sub = await coordinator.submit(bounty_id, "tok", diff_text())
    assert await run_worker(coordinator.store, coordinator.cfg, idle_exit=True) == 2
    await coordinator.reconcile_evaluations()
    bounty = await coordinator.get_bounty(bounty_id)
    assert bounty["baseline"]["metrics"]["error"] == 3.0  # held-out set a: OFFSET 3
    verdict = await coordinator.submission(sub["id"])
    assert verdict["status"] == "ACCEPTED", verdict
    assert (await coordinator.submission_detail(sub["id"]))["verdict"]["metrics"]["error"] == 1.0


async def test_a_failed_baseline_stops_sales_and_refunds(coordinator, bounty_dir):
    bounty_id = await _bounty(coordinator, bounty_dir)
    await _finish(coordinator, "kind = 'baseline' AND bounty_id = ?", (bounty_id,), status="FAILED",
                  error="the run exited with code 1")
    await coordinator.reconcile_evaluations()
    bounty = (await coordinator.list_bounties(include_all=True))[0]
    assert bounty["status"] == "CANCELED" and bounty["baseline"]["status"] == "failed"
    for capability in ("download", "submit"):
        with pytest.raises(Conflict):
            await coordinator.ensure_sellable(bounty_id, capability)
    reasons = [e["payload"].get("reason") for e in await coordinator.events_after(0, 1000)
               if e["kind"] == "bounty.status" and e["payload"].get("status") == "CANCELED"]
    assert reasons and "baseline evaluation failed" in reasons[0]


async def test_cancelling_a_bounty_ends_its_waiting_submissions_and_refunds_their_stakes(coordinator, tmp_path, net):
    bounty_id = await _bounty(coordinator, make_bounty(tmp_path, stake_sats=500))
    view = await coordinator.submit(bounty_id, "tok", diff_text())
    agent = net.node("agent-1")
    before = (await agent.status()).balance_msat
    paying = asyncio.create_task(agent.pay(view["stake"]["invoice"]))
    for _ in range(300):
        await coordinator.reconcile_invoices()
        if (await coordinator.submission(view["id"]))["status"] == "QUEUED":
            break
        await asyncio.sleep(0.05)
    await coordinator.cancel_bounty(bounty_id, reason="test")
    await paying
    ended = await coordinator.submission(view["id"])
    assert ended["status"] == "REJECTED" and ended["reasons"] == ["bounty_cancelled"]
    stake = await coordinator.store.fetchone("SELECT status FROM invoices WHERE kind = 'stake'")
    assert stake["status"] == "CANCELED"
    assert (await agent.status()).balance_msat >= before - 2_000  # the 500-sat stake came back (fees aside)
    assert await coordinator.store.scalar("SELECT status FROM evaluations WHERE submission_id = ?",
                                          (view["id"],)) == "FAILED"


async def test_a_public_gain_far_above_the_heldout_gain_is_flagged_overfit(coordinator, bounty_dir):
    bounty_id = await _bounty(coordinator, bounty_dir)
    await _finish(coordinator, "kind = 'baseline' AND bounty_id = ?", (bounty_id,), metrics={"error": 3.0},
                  public={"error": 3.0})
    honest = await coordinator.submit(bounty_id, "tok-a", diff_text())
    await _finish(coordinator, "submission_id = ?", (honest["id"],), metrics={"error": 2.7}, public={"error": 2.6})
    tuned = await coordinator.submit(bounty_id, "tok-b", diff_text().replace("OFFSET = 1", "OFFSET = 0"))
    await _finish(coordinator, "submission_id = ?", (tuned["id"],), metrics={"error": 2.4}, public={"error": 0.0})
    await coordinator.reconcile_evaluations()
    assert (await coordinator.submission(honest["id"]))["status"] == "ACCEPTED"  # 13 % public vs 10 % held-out
    flagged = await coordinator.submission(tuned["id"])
    assert flagged["status"] == "FLAGGED" and flagged["reasons"] == ["flagged:overfit"]
    evidence = (await coordinator.submission_detail(tuned["id"]))["verdict"]["flags"][0]["evidence"]
    assert evidence["public_gain"] == pytest.approx(1.0) and evidence["heldout_gain"] == pytest.approx(0.2)
