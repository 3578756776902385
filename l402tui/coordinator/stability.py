"""The 20 % holdback: a timer row, a re-evaluation on a rotated held-out set, a decision.

When a payout is allocated, :func:`schedule` writes a ``holdback_release`` timer.
When it is due, :func:`run_due` queues two ``evaluations`` rows of kind ``stability``
on the next held-out set: the submission, and the baseline (no diff; shared by every
submission checked on that set).  Scores on different sets are not comparable, so the
submission's gain is measured against the baseline *on the same set*.

The improvement holds if that gain is at least ``g₀ − tolerance × i``, where ``i`` is
the improvement the submission was paid for (its step of the bounty's paid level, over
the baseline: see ``payout_levels``) and ``g₀`` its gain over the baseline when
accepted: at most ``coordinator.stability_tolerance`` of its own contribution may
vanish on new data.  Then the holdback is released to the
agent; otherwise it returns to the pool, and the reason is recorded either way.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from l402tui.bounty.spec import Metric
from l402tui.config import Config
from l402tui.coordinator import ledger, lifecycle, payout_sender
from l402tui.coordinator.payout_levels import allocation, paid_range
from l402tui.coordinator.payout_math import bounty_terms, verdict_improvement
from l402tui.domain import SubmissionStatus as S
from l402tui.evaluation.scoring import metric_gain
from l402tui.store.db import Store, Txn, now

log = logging.getLogger("l402tui.payouts")

TIMER = "holdback_release"


@dataclass(frozen=True)
class StabilityDecision:
    holds: bool
    reason: str


def holdback_seconds(cfg: Config, bounty: dict[str, Any]) -> float:
    terms = bounty_terms(bounty)
    return terms.holdback_s if terms.holdback_s is not None else float(cfg.get("coordinator.holdback_seconds"))


async def schedule(txn: Txn, submission_id: str, due_at: float) -> None:
    await txn.execute("INSERT OR IGNORE INTO timers (kind, subject_id, due_at, created_at) VALUES (?, ?, ?, ?)",
                      (TIMER, submission_id, due_at, now()))


def composite_gain(summary: dict[str, Any], new: dict[str, Any], ref: dict[str, Any]) -> float:
    """The bounty's weighted gain of ``new`` over ``ref`` (as the verdict computes it), from
    the coordinator's spec summary; raises KeyError naming a missing metric."""
    metrics = [Metric(m["name"], m["direction"], float(m.get("weight", 1.0))) for m in summary.get("metrics", [])
               if float(m.get("weight", 1.0)) > 0]
    if not metrics:
        raise KeyError("the bounty has no weighted metric")
    relative = (summary.get("target") or {}).get("kind", "relative") == "relative"
    missing = [m.name for m in metrics if m.name not in new or m.name not in ref]
    if missing:
        raise KeyError(f"metric(s) {', '.join(missing)} missing from the stability evaluation")
    total = sum(m.weight for m in metrics)
    return sum(m.weight * metric_gain(m, float(new[m.name]), float(ref[m.name]), relative=relative)
               for m in metrics) / total


def judge(*, improvement: float, gain_when_accepted: float, gain_now: float, tolerance: float,
          heldout_set: int) -> StabilityDecision:
    """Does an accepted improvement hold on the rotated set?  Pure; see the module docstring."""
    need = gain_when_accepted - tolerance * improvement
    detail = (f"on held-out set {heldout_set} it beats the baseline by {gain_now:.4%}; it was paid for "
              f"{improvement:.4%} and beat the baseline by {gain_when_accepted:.4%} when accepted, so at least "
              f"{need:.4%} is needed ({tolerance:.0%} of its own improvement may vanish)")
    return StabilityDecision(gain_now >= need, ("holds: " if gain_now >= need else "does not hold: ") + detail)


def _rotated_set(first: dict[str, Any] | None, sets: int, attempt: int) -> int:
    used = first["heldout_set"] if first and first["heldout_set"] is not None else 0
    return (used + 1 + attempt) % sets if sets > 1 else used


async def _queue_evaluations(txn: Txn, sub: dict[str, Any], bounty: dict[str, Any], attempt: int) -> int:
    first = await txn.fetchone("SELECT heldout_set FROM evaluations WHERE submission_id = ? AND kind = 'submission' "
                               "ORDER BY id LIMIT 1", (sub["id"],))
    rotated = _rotated_set(first, bounty_terms(bounty).heldout_sets, attempt)
    eval_id = await txn.insert("evaluations", {"bounty_id": sub["bounty_id"], "submission_id": sub["id"],
                                               "kind": "stability", "heldout_set": rotated, "status": "QUEUED",
                                               "created_at": now()})
    if not await _baseline_row(txn, sub["bounty_id"], rotated, usable_only=True):
        await txn.insert("evaluations", {"bounty_id": sub["bounty_id"], "submission_id": None, "kind": "stability",
                                         "heldout_set": rotated, "status": "QUEUED", "created_at": now()})
    await txn.event("holdback.evaluating", sub["id"], bounty_id=sub["bounty_id"], heldout_set=rotated,
                    evaluation_id=eval_id)
    return eval_id


async def _baseline_row(conn: Store | Txn, bounty_id: str, heldout_set: int, *,
                        usable_only: bool = False) -> dict[str, Any] | None:
    """The latest baseline re-measurement on a set (QUEUED/RUNNING/DONE; FAILED only if nothing else)."""
    rows = await conn.fetchall("SELECT * FROM evaluations WHERE bounty_id = ? AND submission_id IS NULL AND "
                               "kind = 'stability' AND heldout_set = ? ORDER BY id DESC", (bounty_id, heldout_set))
    live = [r for r in rows if r["status"] != "FAILED"]
    if live:
        return live[0]
    return None if usable_only or not rows else rows[0]


async def release(store: Store, sub: dict[str, Any], reason: str, *, keysend: bool) -> None:
    """Move the submission's holdback to what it is owed and queue its payment."""
    bounty_id = sub["bounty_id"]
    async with ledger.transition(store, bounty_id) as txn:
        held = await ledger.balance(txn, ledger.holdback(bounty_id), submission_id=sub["id"])
        if held > 0 and await ledger.post(
                txn, f"holdback_release:{sub['id']}",
                [ledger.Transfer(ledger.holdback(bounty_id), ledger.owed(sub["id"]), held, sub["id"])],
                bounty_id=bounty_id, memo=f"holdback released: {reason}"):
            await payout_sender.add(txn, key=f"holdback:{sub['id']}", bounty_id=bounty_id, submission_id=sub["id"],
                                    purpose="holdback", amount_msat=held, destination=sub["payout_destination"],
                                    keysend=keysend)
            await txn.event("holdback.released", sub["id"], bounty_id=bounty_id, amount_msat=held, reason=reason)
        await txn.execute("UPDATE timers SET done_at = ? WHERE kind = ? AND subject_id = ? AND done_at IS NULL",
                          (now(), TIMER, sub["id"]))


async def forfeit(store: Store, sub: dict[str, Any], reason: str) -> None:
    """Return the submission's holdback to the pool and say why."""
    bounty_id = sub["bounty_id"]
    async with ledger.transition(store, bounty_id) as txn:
        held = await ledger.balance(txn, ledger.holdback(bounty_id), submission_id=sub["id"])
        if held > 0 and await ledger.post(
                txn, f"holdback_forfeit:{sub['id']}",
                [ledger.Transfer(ledger.holdback(bounty_id), ledger.pool(bounty_id), held, sub["id"])],
                bounty_id=bounty_id, memo=f"holdback forfeited: {reason}"):
            await txn.event("holdback.forfeited", sub["id"], bounty_id=bounty_id, amount_msat=held, reason=reason)
            await lifecycle.move_submission(txn, sub["id"], (S.ACCEPTED, S.PAID_PARTIAL), S.HOLDBACK_FORFEITED,
                                            reasons=[reason], reason=reason)
        await txn.execute("UPDATE timers SET done_at = ? WHERE kind = ? AND subject_id = ? AND done_at IS NULL",
                          (now(), TIMER, sub["id"]))


async def run_due(store: Store, cfg: Config, *, at: float | None = None, keysend: bool = True) -> int:
    """Advance every due holdback timer by one step.  Call with the payout lock held."""
    at = now() if at is None else at
    timers = await store.fetchall("SELECT * FROM timers WHERE kind = ? AND done_at IS NULL AND due_at <= ? "
                                  "ORDER BY due_at", (TIMER, at))
    decided = 0
    max_attempts = int(cfg.get("coordinator.stability_max_attempts"))
    for timer in timers:
        sub = await store.fetchone("SELECT * FROM submissions WHERE id = ?", (timer["subject_id"],))
        if sub is None:
            continue
        bounty = await store.fetchone("SELECT * FROM bounties WHERE id = ?", (sub["bounty_id"],))
        evals = await store.fetchall("SELECT * FROM evaluations WHERE submission_id = ? AND kind = 'stability' "
                                     "ORDER BY id", (sub["id"],))
        latest = evals[-1] if evals else None
        if latest is None or (latest["status"] == "FAILED" and len(evals) < max_attempts):
            async with store.transaction() as txn:
                await _queue_evaluations(txn, sub, bounty, len(evals))
            continue
        if latest["status"] == "FAILED":
            await forfeit(store, sub, f"the stability re-evaluation failed {len(evals)} times "
                                      f"(last: {latest['error'] or 'unknown error'})")
            decided += 1
            continue
        if latest["status"] != "DONE":
            continue  # QUEUED or RUNNING: the evaluation queue has it
        base = await _baseline_row(store, sub["bounty_id"], latest["heldout_set"])
        if base is None or base["status"] == "FAILED":
            failures = await store.scalar(
                "SELECT COUNT(*) FROM evaluations WHERE bounty_id = ? AND submission_id IS NULL AND kind = 'stability' "
                "AND heldout_set = ? AND status = 'FAILED'", (sub["bounty_id"], latest["heldout_set"]))
            if failures >= max_attempts:
                # Not the agent's doing: without a baseline on that set nothing speaks against it.
                await release(store, sub, f"the baseline could not be re-measured on held-out set "
                                          f"{latest['heldout_set']} ({failures} failures); released without the check",
                              keysend=keysend)
                decided += 1
            else:
                async with store.transaction() as txn:
                    await txn.insert("evaluations", {"bounty_id": sub["bounty_id"], "submission_id": None,
                                                     "kind": "stability", "heldout_set": latest["heldout_set"],
                                                     "status": "QUEUED", "created_at": now()})
            continue
        if base["status"] != "DONE":
            continue
        summary = json.loads(bounty["spec_json"] or "{}")
        verdict = json.loads(sub["verdict_json"] or "{}")
        improvement = paid_range(await allocation(store, sub["id"]), verdict_improvement(sub))
        try:
            gain_now = composite_gain(summary, json.loads(latest["metrics_json"] or "{}"),
                                      json.loads(base["metrics_json"] or "{}"))
        except KeyError as exc:
            await forfeit(store, sub, f"the stability evaluation cannot be scored: {exc.args[0]}")
            decided += 1
            continue
        decision = judge(improvement=improvement,
                         gain_when_accepted=float(verdict.get("improvement_vs_baseline", improvement)),
                         gain_now=gain_now, tolerance=float(cfg.get("coordinator.stability_tolerance")),
                         heldout_set=latest["heldout_set"])
        if decision.holds:
            await release(store, sub, decision.reason, keysend=keysend)
        else:
            await forfeit(store, sub, decision.reason)
        decided += 1
    return decided
