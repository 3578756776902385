"""What an agent may learn of an evaluation: built here, and only here.

Every agent-facing answer about a submission or a bounty's results (the submission
status route, the submit and claim answers, the leaderboard, a bounty's best) is
made by the functions below from a stored :class:`~l402tui.coordinator.verdict.Verdict`,
and they read only fields the coordinator chose to publish:

- the decision and its reason codes (a closed list: :mod:`l402tui.evaluation.reasons`);
- for an ACCEPTED submission, its primary metric and improvement rounded to the
  bounty's noise step (the ladder, see ``verdict.py``); a rejected one, no number;
- *when*: a decision becomes visible only at the end of a coarse time class,
  ``created + Q·2^k`` for the smallest k that covers the time it took
  (``coordinator.verdict_quantum_s`` = Q), so a run that sleeps to signal learns
  at most which class it fell in.  Until then the submission reads QUEUED, and
  nothing the decision causes (stake resolution, payouts, the bounty's best) happens.

Never the operator's detail (``reasons``), the evaluation's error text, log paths,
exit codes, output sizes or exact times: every one of those is a string or number
the agent's code controlled, and so a channel out of the held-out set.
``docs/verdicts.md`` explains what an agent sees and why.
"""

from __future__ import annotations

import math
import time
from typing import Any

from l402tui.coordinator.verdict import Verdict
from l402tui.coordinator.views import iso

# Agent-visible submission states.  QUEUED means "waiting for a verdict": queued, being
# evaluated (when a run starts tells of the runs before it) or decided and not yet revealed.
AGENT_STATES = ("RECEIVED", "AWAITING_STAKE", "QUEUED", "ACCEPTED", "REJECTED", "FLAGGED",
                "PAID_PARTIAL", "PAID_FULL", "HOLDBACK_FORFEITED")
_PENDING = ("QUEUED", "EVALUATING")


def reveal_at(created_at: float, decided_at: float, quantum_s: float) -> float:
    """When a decision reached at ``decided_at`` may be shown: the end of its time class."""
    if quantum_s <= 0:
        return decided_at
    took = max(decided_at - created_at, 0.0)
    k = 0 if took <= quantum_s else math.ceil(math.log2(took / quantum_s) - 1e-12)
    return created_at + quantum_s * (2 ** k)


def revealed(verdict: Verdict | None, now: float | None = None) -> bool:
    if verdict is None:
        return False
    return verdict.reveal_at is None or (time.time() if now is None else now) >= verdict.reveal_at


def agent_verdict(verdict: Verdict) -> dict[str, Any]:
    """The decision, its codes, and (ACCEPTED) the ladder-rounded numbers."""
    published = verdict.published if verdict.decision == "ACCEPTED" else None
    return {"decision": verdict.decision, "reasons": list(verdict.codes),
            "improvement": published["improvement"] if published else None,
            "published": dict(published) if published else None}


def agent_submission(row: dict[str, Any], *, stake: dict[str, Any] | None = None,
                     payouts: dict[str, Any] | None = None, now: float | None = None) -> dict[str, Any]:
    """A submission as its agent sees it (``row``: a ``submissions`` row)."""
    verdict = Verdict.from_json(row["verdict_json"])
    status = row["status"]
    shown = verdict is not None and revealed(verdict, now)
    if status in _PENDING or (verdict is not None and not shown):
        status = "QUEUED"
    out: dict[str, Any] = {
        "id": row["id"],
        "bounty_id": row["bounty_id"],
        "status": status,
        "claimed_score": row["claimed_score"],
        "payout_destination": row["payout_destination"],
        "diff_sha256": row["diff_sha256"],
        "created_at": iso(row["created_at"]),
        "verdict": agent_verdict(verdict) if shown else None,
        "reasons": list(verdict.codes) if shown else [],
    }
    if stake is not None:
        out["stake"] = stake
    if payouts is not None and shown:
        out["payouts"] = payouts
    return out


def agent_best(best: dict[str, Any] | None, now: float | None = None) -> dict[str, Any] | None:
    """A bounty's best as agents see it: the baseline's status, or the last revealed
    accepted submission's published numbers."""
    if not best:
        return None
    now = time.time() if now is None else now
    while best and best.get("submission_id") and (best.get("reveal_at") or 0) > now:
        best = best.get("prior")  # the best before this one, until this one is revealed
    if not best or not best.get("submission_id"):
        return {"status": "baseline"}
    published = best.get("published") or {}
    metrics = {published["metric"]: published["score"]} if published.get("score") is not None else {}
    return {"status": "measured", "submission_id": best["submission_id"], "published": published or None,
            "metrics": metrics}


def leaderboard_entry(row: dict[str, Any], verdict: Verdict) -> dict[str, Any]:
    published = verdict.published or {}
    return {"submission_id": row["id"], "status": row["status"], "improvement": published.get("improvement"),
            "score": published.get("score"), "metric": published.get("metric"), "accepted_at": iso(row["created_at"])}


