"""Submissions: intake, the daily limit, stakes, and turning evaluations into verdicts.

Submission: RECEIVED -> AWAITING_STAKE -> QUEUED -> EVALUATING -> ACCEPTED | REJECTED | FLAGGED
(then payouts: ACCEPTED -> PAID_PARTIAL -> PAID_FULL | HOLDBACK_FORFEITED).

The evaluation queue (``l402tui/evaluation/queue.py``) runs the ``evaluations``
rows written here; :func:`reconcile_evaluations` reads their outcome back.  It
polls rows rather than taking callbacks so that a queue in another process, or
a restart between the two, loses nothing.  What a decision causes (payouts, the
cancel of a bounty whose baseline failed) is the service's to run: these functions
take the narrow :class:`~l402tui.coordinator.core.CoordinatorCore` and return what
they decided.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from l402tui.bounty import BountyInvalid, BountySpec, load_bounty
from l402tui.coordinator import disclosure, lifecycle, payouts, rationing
from l402tui.coordinator.errors import Conflict, Invalid, LimitReached, Unavailable
from l402tui.coordinator.verdict import Verdict, judge
from l402tui.coordinator.views import submission_view
from l402tui.domain import DECIDED, PAYABLE, UNDECIDED, sql_list
from l402tui.evaluation.diffcheck import check_diff
from l402tui.evaluation.reasons import Reason, is_code
from l402tui.lightning.backend import LightningError
from l402tui.store.db import Store, Txn

if TYPE_CHECKING:
    from l402tui.coordinator.core import CoordinatorCore

log = logging.getLogger("l402tui.coordinator")

FINAL = DECIDED  # the name this module and its readers have used


def load_frozen_spec(source_dir: str) -> BountySpec:
    try:
        return load_bounty(source_dir)
    except BountyInvalid as exc:  # the frozen copy validated at creation; this means tampering
        raise Conflict(f"the coordinator's frozen copy of this bounty no longer validates: {exc}") from None


async def submit(core: "CoordinatorCore", bounty_id: str, token_id: str, diff: str, *,
                 claimed_score: float | None, payout_destination: str | None) -> dict[str, Any]:
    bounty = await lifecycle.bounty_row(core.store, bounty_id)
    now = time.time()
    if bounty["status"] != "OPEN":
        raise Conflict(f"bounty {bounty_id} is {bounty['status']}; it takes no submissions", code="bounty_not_open")
    if now >= bounty["deadline"]:
        raise Conflict(f"bounty {bounty_id} passed its deadline; it takes no submissions", code="deadline_passed")
    if not isinstance(diff, str) or not diff.strip():
        raise Invalid("'diff' must be a non-empty unified diff against the package's target/ folder",
                      code="invalid_diff")
    if claimed_score is not None and not isinstance(claimed_score, (int, float)):
        raise Invalid("'claimed_score' must be a number (your public-set score)", code="invalid_request")
    spec = load_frozen_spec(bounty["source_dir"])
    max_bytes = int(core.cfg.get("coordinator.max_diff_bytes"))
    # The harness's checks are the authority (the same ones run before evaluating).
    size = len(diff.encode("utf-8"))
    problems = [f"the diff is {size} bytes; the limit is {max_bytes}"] if size > max_bytes else []
    problems += list(await asyncio.to_thread(check_diff, spec, diff))  # git and a copy: off the loop
    if problems:
        raise Invalid("the diff was refused: " + "; ".join(problems), code="diff_refused",
                      details={"problems": problems})

    # Checked here to answer early; enforced again inside the transaction that inserts.
    await _check_daily_limit(core.store, core.cfg, bounty_id, token_id, now)

    submission_id = "s_" + secrets.token_hex(12)
    stake_sats = rationing.required_stake_sats(spec, bounty["pool_msat"] // 1000,
                                               await rationing.evaluations_in_window(core.store, bounty_id, now))
    stake = None
    preimage = None
    if stake_sats > 0:
        preimage = secrets.token_bytes(32)
        payment_hash = hashlib.sha256(preimage).hexdigest()
        try:
            invoice = await core.backend.create_hold_invoice(
                payment_hash, stake_sats * 1000, f"l402tui: stake for submission {submission_id}",
                expiry_s=3600, cltv_delta=int(core.cfg.get("lightning.hold_cltv_blocks")), preimage=preimage.hex())
        except LightningError as exc:
            raise Unavailable(f"the Lightning node could not create the stake invoice: {exc}; retry") from None
        stake = {"invoice": invoice.bolt11, "payment_hash": payment_hash, "amount_sats": stake_sats,
                 "status": "OPEN", "expires_at": invoice.expires_at}

    try:
        async with core.transaction() as txn:
            # The write lock is held from here: concurrent submits count each other.
            await _check_daily_limit(txn, core.cfg, bounty_id, token_id, now)
            served = await rationing.evaluations_in_window(txn, bounty_id, now)
            if rationing.required_stake_sats(spec, bounty["pool_msat"] // 1000, served) > stake_sats:
                raise Conflict("the stake this bounty asks for rose while the submission was being made "
                               "(other evaluations were queued first); submit again", code="stake_changed")
            await txn.insert("submissions", {
                "id": submission_id, "bounty_id": bounty_id, "token_id": token_id, "status": "RECEIVED",
                "diff": diff, "diff_sha256": hashlib.sha256(diff.encode("utf-8")).hexdigest(),
                "claimed_score": float(claimed_score) if claimed_score is not None else None,
                "payout_destination": payout_destination,
                "stake_payment_hash": stake["payment_hash"] if stake else None,
                "created_at": now, "updated_at": now,
            })
            await txn.event("submission.status", submission_id, bounty_id=bounty_id, status="RECEIVED")
            if stake:
                await txn.insert("invoices", {
                    "payment_hash": stake["payment_hash"], "kind": "stake", "bolt11": stake["invoice"],
                    "amount_msat": stake_sats * 1000, "is_hold": 1, "status": "OPEN", "preimage": preimage.hex(),
                    "bounty_id": bounty_id, "submission_id": submission_id, "expires_at": stake["expires_at"],
                    "created_at": now, "updated_at": now,
                })
                await _move(txn, submission_id, "RECEIVED", "AWAITING_STAKE", bounty_id=bounty_id)
            else:
                await _queue(txn, submission_id, bounty_id, "RECEIVED")
    except BaseException:
        if stake:
            await core.backend.cancel_hold(stake["payment_hash"])
        raise
    return await status(core.store, submission_id)


async def _check_daily_limit(db: Any, cfg: Any, bounty_id: str, token_id: str, now: float) -> None:
    """A token's submissions to one bounty per UTC day (``db``: the store or a transaction)."""
    limit = int(cfg.get("coordinator.submissions_per_day"))
    day_start = dt.datetime.fromtimestamp(now, dt.timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    used = (await db.fetchone(
        "SELECT COUNT(*) AS n FROM submissions WHERE bounty_id = ? AND token_id = ? AND created_at >= ?",
        (bounty_id, token_id, day_start.timestamp())))["n"]
    if used >= limit:
        wait = int((day_start + dt.timedelta(days=1)).timestamp() - now) + 1
        raise LimitReached(f"this token has used its {limit} submissions for bounty {bounty_id} today (UTC); "
                           f"the limit resets in {wait} s", retry_after_s=wait, code="daily_limit")


_move = lifecycle.move_submission


async def _queue(txn: Txn, submission_id: str, bounty_id: str, frm: str) -> None:
    if await _move(txn, submission_id, frm, "QUEUED", bounty_id=bounty_id):
        await txn.insert("evaluations", {"bounty_id": bounty_id, "submission_id": submission_id,
                                         "kind": "submission", "heldout_set": 0, "status": "QUEUED",
                                         "created_at": time.time()})


async def stake_held(txn: Txn, submission_id: str) -> None:
    row = await txn.fetchone("SELECT bounty_id FROM submissions WHERE id = ?", (submission_id,))
    if row is not None:
        await _queue(txn, submission_id, row["bounty_id"], "AWAITING_STAKE")


async def stake_lapsed(txn: Txn, submission_id: str, how: str) -> None:
    """A stake invoice that expired or was cancelled before it was paid ends the submission."""
    reason = f"the stake invoice {how} before it was paid; submit again and pay the stake to be evaluated"
    await _move(txn, submission_id, "AWAITING_STAKE", "REJECTED",
                verdict=Verdict.rejected(Reason.STAKE_LAPSED, reason))


async def _stake(store: Store, row: dict[str, Any]) -> dict[str, Any] | None:
    if not row["stake_payment_hash"]:
        return None
    inv = await store.fetchone("SELECT bolt11, amount_msat, status, expires_at FROM invoices "
                               "WHERE payment_hash = ?", (row["stake_payment_hash"],))
    if inv is None:
        return None
    return {"invoice": inv["bolt11"], "amount_sats": inv["amount_msat"] // 1000, "status": inv["status"],
            "expires_at": inv["expires_at"], "payment_hash": row["stake_payment_hash"]}


async def _payout_summary(store: Store, row: dict[str, Any]) -> dict[str, Any] | None:
    if row["status"] in PAYABLE or row["stake_payment_hash"]:
        # What is owed and paid (payouts, a stake's refundable part), so the agent knows what
        # to claim: amounts, not secrets.
        return await payouts.payout_summary(store, row["id"])
    return None


async def end_with_bounty(txn: Txn, submission_id: str, bounty_id: str) -> None:
    """A cancelled bounty ends its waiting submissions (their stake holds are cancelled by the caller)."""
    await txn.execute("UPDATE invoices SET status = 'CANCELED', updated_at = ? WHERE submission_id = ? "
                      "AND kind = 'stake' AND status IN ('OPEN', 'ACCEPTED')", (time.time(), submission_id))
    await txn.execute("UPDATE evaluations SET status = 'FAILED', error = 'the bounty was cancelled', "
                      "reason_code = ? WHERE submission_id = ? AND status = 'QUEUED'",
                      (Reason.BOUNTY_CANCELLED.value, submission_id))
    await _move(txn, submission_id, UNDECIDED, "REJECTED",
                bounty_id=bounty_id, verdict=Verdict.rejected(Reason.BOUNTY_CANCELLED, "the bounty was cancelled; "
                                                              "the stake, if any, is refunded"))


async def status(store: Store, submission_id: str) -> dict[str, Any]:
    """A submission as its agent may see it: built by coordinator/disclosure.py, nothing else."""
    row = await lifecycle.submission_row(store, submission_id)
    return disclosure.agent_submission(row, stake=await _stake(store, row),
                                       payouts=await _payout_summary(store, row))


async def detail(store: Store, submission_id: str) -> dict[str, Any]:
    """The operator's and sponsor's view: the whole verdict, the evaluation's error and reason code."""
    row = await lifecycle.submission_row(store, submission_id)
    view = submission_view(row, stake_invoice=await _stake(store, row))
    evaluation = await store.fetchone(
        "SELECT id, status, metrics_json, sandbox, error, reason_code FROM evaluations WHERE submission_id = ? "
        "AND kind = 'submission' ORDER BY id DESC LIMIT 1", (submission_id,))
    if evaluation:
        view["evaluation"] = {"id": evaluation["id"], "status": evaluation["status"],
                              "sandbox": evaluation["sandbox"], "error": evaluation["error"],
                              "reason_code": evaluation["reason_code"],
                              "metrics": json.loads(evaluation["metrics_json"]) if evaluation["metrics_json"]
                              else None}
    summary = await _payout_summary(store, row)
    if summary is not None:
        view["payouts"] = summary
    return view


async def list_all(store: Store, bounty_id: str | None, limit: int) -> list[dict[str, Any]]:
    """Every submission with its detail (the operator's list)."""
    where, params = ("WHERE bounty_id = ?", (bounty_id,)) if bounty_id else ("", ())
    rows = await store.fetchall(f"SELECT * FROM submissions {where} ORDER BY created_at DESC LIMIT ?",
                                (*params, int(limit)))
    return [submission_view(r) for r in rows]


async def leaderboard(store: Store, bounty_id: str) -> list[dict[str, Any]]:
    """Revealed accepted submissions with their published (ladder-rounded) numbers."""
    rows = await store.fetchall(
        f"SELECT id, status, verdict_json, created_at FROM submissions WHERE bounty_id = ? AND status IN "
        f"{sql_list(PAYABLE)}", (bounty_id,))
    now = time.time()
    board = []
    for r in rows:
        verdict = Verdict.from_json(r["verdict_json"])
        if verdict is not None and verdict.decision == "ACCEPTED" and disclosure.revealed(verdict, now):
            board.append(disclosure.leaderboard_entry(r, verdict))
    board.sort(key=lambda e: (-(e["improvement"] or 0.0), e["accepted_at"] or ""))
    for rank, entry in enumerate(board, 1):
        entry["rank"] = rank
    return board


# -- evaluations -> verdicts ---------------------------------------------------------------


@dataclass
class Reconciled:
    """What :func:`reconcile_evaluations` did, for the service to act on."""

    changed: int = 0  # submissions and baselines brought up to date
    decided: set[str] = field(default_factory=set)  # submissions that got their verdict now
    failed_baselines: list[tuple[str, str]] = field(default_factory=list)  # (bounty id, error)


async def reconcile_evaluations(core: "CoordinatorCore") -> Reconciled:
    """Bring submissions and baselines up to date with the evaluation queue's rows."""
    done = Reconciled()
    rows = await core.store.fetchall(
        "SELECT e.id AS eval_id, e.status AS eval_status, e.kind, e.bounty_id, e.submission_id, e.error, "
        "e.reason_code, e.metrics_json, e.spread_json, e.public_metrics_json, s.status AS sub_status "
        "FROM evaluations e "
        "LEFT JOIN submissions s ON s.id = e.submission_id "
        "WHERE (e.kind = 'submission' AND s.status IN ('QUEUED', 'EVALUATING')) "
        "OR (e.kind = 'baseline' AND e.status IN ('DONE', 'FAILED') AND e.bounty_id IN "
        "    (SELECT id FROM bounties WHERE baseline_json IS NULL))")
    for r in rows:
        if r["kind"] == "baseline":
            error = await _record_baseline(core, r)
            if error is not None:
                done.failed_baselines.append((r["bounty_id"], error))
            done.changed += 1
        elif r["eval_status"] == "RUNNING" and r["sub_status"] == "QUEUED":
            async with core.transaction() as txn:
                await _move(txn, r["submission_id"], "QUEUED", "EVALUATING", bounty_id=r["bounty_id"])
            done.changed += 1
        elif r["eval_status"] in ("DONE", "FAILED") and await _decide(core, r):
            done.changed += 1
            done.decided.add(r["submission_id"])
    return done


async def _record_baseline(core: "CoordinatorCore", r: dict[str, Any]) -> str | None:
    """Store a finished baseline; the error when it failed and this call recorded it."""
    if r["eval_status"] == "DONE":
        baseline = {"status": "measured", "metrics": json.loads(r["metrics_json"] or "{}"),
                    "spread": json.loads(r["spread_json"] or "{}"), "evaluation_id": r["eval_id"]}
        if r["public_metrics_json"]:
            baseline["public"] = json.loads(r["public_metrics_json"])  # for the judge's overfit check
    else:
        baseline = {"status": "failed", "error": r["error"] or "unknown error", "evaluation_id": r["eval_id"]}
    async with core.transaction() as txn:
        changed = await txn.execute(
            "UPDATE bounties SET baseline_json = ?, best_json = COALESCE(best_json, ?), updated_at = ? "
            "WHERE id = ? AND baseline_json IS NULL",
            (json.dumps(baseline), json.dumps(baseline) if baseline["status"] == "measured" else None,
             time.time(), r["bounty_id"]))
        if changed:
            await txn.event("bounty.baseline", r["bounty_id"], **baseline)
    return baseline["error"] if changed and baseline["status"] == "failed" else None


async def _decide(core: "CoordinatorCore", r: dict[str, Any]) -> bool:
    """A finished evaluation -> ACCEPTED / REJECTED / FLAGGED.  What the decision causes
    (stake resolution, payouts) runs when it is revealed (:func:`due_verdicts`)."""
    bounty = await lifecycle.bounty_row(core.store, r["bounty_id"])
    if r["eval_status"] == "FAILED":
        code = r["reason_code"] if is_code(r["reason_code"]) else Reason.INTERNAL_ERROR.value
        verdict = Verdict.rejected(code, f"evaluation failed: {r['error'] or 'unknown error'}")
    else:
        baseline = json.loads(bounty["baseline_json"] or "null")
        if baseline is None:
            return False  # the baseline evaluation was queued first; wait for it
        if baseline.get("status") != "measured":
            verdict = Verdict.rejected(Reason.BASELINE_UNAVAILABLE, "the bounty's baseline could not be measured, "
                                       "so no improvement can be judged")
        else:
            verdict = await judge(core, load_frozen_spec(bounty["source_dir"]), bounty, baseline, r)
    now = time.time()
    sub = await core.store.fetchone("SELECT created_at FROM submissions WHERE id = ?", (r["submission_id"],))
    verdict.decided_at = now
    verdict.reveal_at = disclosure.reveal_at(sub["created_at"], now,
                                             float(core.cfg.get("coordinator.verdict_quantum_s")))
    decision = verdict.decision
    async with core.transaction() as txn:
        moved = await _move(txn, r["submission_id"], ("QUEUED", "EVALUATING"), decision,
                            bounty_id=r["bounty_id"], verdict=verdict)
        if moved and decision == "ACCEPTED" and verdict.best is not None:
            # Accepted improvements stack: the next submission must beat this one.  Agents see
            # the prior best until this one is revealed.
            prior = json.loads(bounty["best_json"] or "null")
            best = {**verdict.best, "reveal_at": verdict.reveal_at,
                    "prior": _public_chain(prior, now)}
            await txn.execute("UPDATE bounties SET best_json = ?, updated_at = ? WHERE id = ?",
                              (json.dumps(best), time.time(), r["bounty_id"]))
            await txn.event("bounty.best", r["bounty_id"], submission_id=r["submission_id"],
                            improvement=verdict.improvement)
        if moved:
            await txn.execute("INSERT OR IGNORE INTO timers (kind, subject_id, due_at, created_at) "
                              "VALUES ('verdict_release', ?, ?, ?)", (r["submission_id"], verdict.reveal_at, now))
    return moved


def _public_chain(best: dict[str, Any] | None, now: float) -> dict[str, Any] | None:
    """The published part of a best and of the bests before it that are not revealed yet."""
    if not best or not best.get("submission_id"):
        return None
    prior = None if (best.get("reveal_at") or 0) <= now else _public_chain(best.get("prior"), now)
    return {"submission_id": best["submission_id"], "published": best.get("published"),
            "reveal_at": best.get("reveal_at"), "prior": prior}


async def due_verdicts(store: Store, now: float) -> list[dict[str, Any]]:
    """Release timers of decisions whose reveal time has come (id, subject_id, status)."""
    return await store.fetchall(
        "SELECT t.id, t.subject_id, s.status FROM timers t JOIN submissions s ON s.id = t.subject_id "
        "WHERE t.kind = 'verdict_release' AND t.done_at IS NULL AND t.due_at <= ? ORDER BY t.due_at", (now,))
