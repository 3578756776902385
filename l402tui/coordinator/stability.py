"""The 20 % holdback: a timer row, a re-evaluation on a rotated held-out set, a decision.

When a payout is allocated, :func:`schedule` writes a ``holdback_release`` timer.
When it is due, :func:`run_due` queues an ``evaluations`` row of kind ``stability``
on the next held-out set (the evaluation queue runs it like any other); when that
is DONE it releases the holdback to the agent if the improvement holds within
``coordinator.stability_tolerance``, else returns it to the pool, recording why.

What "holds" means: if the stability evaluation's metrics carry ``improvement``
(the scorer's improvement over the reference on the same set), at least
``(1 - tolerance) ×`` the accepted improvement must remain.  Otherwise the primary
metric on the new set is compared with the one accepted: it may be worse by at most
``tolerance × improvement`` (relative), i.e. most of the gain must survive new data.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from l402tui.config import Config
from l402tui.coordinator import ledger, payout_sender
from l402tui.coordinator.payout_math import bounty_terms, verdict_improvement
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


def judge(*, improvement: float, tolerance: float, accepted_metrics: dict[str, float] | None,
          new_metrics: dict[str, Any], primary: str | None, direction: str) -> StabilityDecision:
    """Does an accepted improvement hold on the rotated set?  Pure; see the module docstring."""
    if isinstance(new_metrics.get("improvement"), (int, float)):
        kept = float(new_metrics["improvement"])
        need = improvement * (1 - tolerance)
        if kept >= need and kept > 0:
            return StabilityDecision(True, f"improvement {kept:.4%} on the rotated set is at least "
                                           f"{need:.4%} ({1 - tolerance:.0%} of the accepted {improvement:.4%})")
        return StabilityDecision(False, f"improvement {kept:.4%} on the rotated set is below {need:.4%} "
                                        f"({1 - tolerance:.0%} of the accepted {improvement:.4%})")
    if not primary or not accepted_metrics or primary not in accepted_metrics or primary not in new_metrics:
        return StabilityDecision(False, f"the stability evaluation has no {primary or 'primary'} metric to compare "
                                        "with the accepted one, so the improvement cannot be shown to hold")
    old, new = float(accepted_metrics[primary]), float(new_metrics[primary])
    scale = abs(old) or 1.0
    change = (new - old) / scale if direction == "maximize" else (old - new) / scale  # > 0: better
    allowed = tolerance * improvement
    if change >= -allowed:
        return StabilityDecision(True, f"{primary} {new:g} on the rotated set vs {old:g} accepted: "
                                       f"{change:+.4%}, within the {allowed:.4%} allowed")
    return StabilityDecision(False, f"{primary} {new:g} on the rotated set vs {old:g} accepted: {change:+.4%}, "
                                    f"worse than the {allowed:.4%} allowed")


async def _queue_evaluation(txn: Txn, sub: dict[str, Any], bounty: dict[str, Any], attempt: int) -> int:
    first = await txn.fetchone("SELECT heldout_set FROM evaluations WHERE submission_id = ? AND kind = 'submission' "
                               "ORDER BY id LIMIT 1", (sub["id"],))
    sets = bounty_terms(bounty).heldout_sets
    used = first["heldout_set"] if first and first["heldout_set"] is not None else 0
    rotated = (used + 1 + attempt) % sets if sets > 1 else used
    eval_id = await txn.insert("evaluations", {"bounty_id": sub["bounty_id"], "submission_id": sub["id"],
                                               "kind": "stability", "heldout_set": rotated, "status": "QUEUED",
                                               "created_at": now()})
    await txn.event("holdback.evaluating", sub["id"], bounty_id=sub["bounty_id"], heldout_set=rotated,
                    evaluation_id=eval_id)
    return eval_id


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
            if await txn.execute("UPDATE submissions SET status = 'HOLDBACK_FORFEITED', reasons = ?, updated_at = ? "
                                 "WHERE id = ? AND status IN ('ACCEPTED', 'PAID_PARTIAL')",
                                 (json.dumps([reason]), now(), sub["id"])):
                await txn.event("submission.status", sub["id"], status="HOLDBACK_FORFEITED", reason=reason)
        await txn.execute("UPDATE timers SET done_at = ? WHERE kind = ? AND subject_id = ? AND done_at IS NULL",
                          (now(), TIMER, sub["id"]))


async def run_due(store: Store, cfg: Config, *, at: float | None = None, keysend: bool = True) -> int:
    """Advance every due holdback timer by one step.  Call with the payout lock held."""
    at = now() if at is None else at
    timers = await store.fetchall("SELECT * FROM timers WHERE kind = ? AND done_at IS NULL AND due_at <= ? "
                                  "ORDER BY due_at", (TIMER, at))
    decided = 0
    for timer in timers:
        sub = await store.fetchone("SELECT * FROM submissions WHERE id = ?", (timer["subject_id"],))
        if sub is None:
            continue
        bounty = await store.fetchone("SELECT * FROM bounties WHERE id = ?", (sub["bounty_id"],))
        evals = await store.fetchall("SELECT * FROM evaluations WHERE submission_id = ? AND kind = 'stability' "
                                     "ORDER BY id", (sub["id"],))
        latest = evals[-1] if evals else None
        if latest is None or (latest["status"] == "FAILED"
                              and len(evals) < int(cfg.get("coordinator.stability_max_attempts"))):
            async with store.transaction() as txn:
                await _queue_evaluation(txn, sub, bounty, len(evals))
            continue
        if latest["status"] == "FAILED":
            await forfeit(store, sub, f"the stability re-evaluation failed {len(evals)} times "
                                      f"(last: {latest['error'] or 'unknown error'})")
            decided += 1
            continue
        if latest["status"] != "DONE":
            continue  # QUEUED or RUNNING: the evaluation queue has it
        summary = json.loads(bounty["spec_json"] or "{}")
        primary = summary.get("primary_metric")
        direction = next((m["direction"] for m in summary.get("metrics", []) if m["name"] == primary), "maximize")
        verdict = json.loads(sub["verdict_json"] or "{}")
        decision = judge(improvement=verdict_improvement(sub), tolerance=float(cfg.get("coordinator.stability_tolerance")),
                         accepted_metrics=verdict.get("metrics"), new_metrics=json.loads(latest["metrics_json"] or "{}"),
                         primary=primary, direction=direction)
        if decision.holds:
            await release(store, sub, decision.reason, keysend=keysend)
        else:
            await forfeit(store, sub, decision.reason)
        decided += 1
    return decided
