"""Turn a finished held-out evaluation into a decision: ACCEPTED, REJECTED or FLAGGED.

The arithmetic (composite gain vs the current best, guards, the k·σ bar) is
``l402tui.evaluation.scoring``; the gaming checks are ``l402tui.evaluation.antigaming``.
This module only gathers their inputs from the rows and combines their answers.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from l402tui.coordinator.submissions import load_frozen_spec

if TYPE_CHECKING:
    from l402tui.coordinator.service import Coordinator


async def judge(coord: "Coordinator", bounty: dict[str, Any], baseline: dict[str, Any],
                evaluation: dict[str, Any]) -> dict[str, Any]:
    from l402tui.evaluation import antigaming, scoring

    spec = load_frozen_spec(bounty["source_dir"])
    medians = json.loads(evaluation["metrics_json"] or "{}")
    best = json.loads(bounty["best_json"] or "null")
    best_medians = best["metrics"] if best and best.get("submission_id") else None
    v = scoring.verdict(spec, medians, baseline_medians=baseline["metrics"],
                        baseline_spreads=baseline.get("spread") or {}, best_medians=best_medians)

    flags = []
    runs = await coord.store.fetchall("SELECT metrics_json FROM eval_runs WHERE evaluation_id = ?",
                                      (evaluation["eval_id"],))
    run_metrics = [json.loads(r["metrics_json"]) for r in runs if r["metrics_json"]] or [medians]
    canary = antigaming.canary_flag(run_metrics)
    if canary:
        flags.append(canary)
    submission = await coord.store.fetchone("SELECT diff, token_id FROM submissions WHERE id = ?",
                                            (evaluation["submission_id"],))
    # Someone else's earlier diff resubmitted (or trivially reworded) earns nothing.
    earlier = await coord.store.fetchall(
        "SELECT id, diff FROM submissions WHERE bounty_id = ? AND id != ? AND created_at <= "
        "(SELECT created_at FROM submissions WHERE id = ?) AND (token_id IS NULL OR token_id != ?)",
        (bounty["id"], evaluation["submission_id"], evaluation["submission_id"], submission["token_id"]))
    dup = antigaming.near_duplicate_flag(submission["diff"], [(r["id"], r["diff"]) for r in earlier],
                                         float(coord.cfg.get("evaluation.near_duplicate_threshold")))
    if dup:
        flags.append(dup)

    if flags:
        decision = "FLAGGED"
        reasons = [f.reason for f in flags]
    else:
        decision = "ACCEPTED" if v.accepted else "REJECTED"
        reasons = list(v.reasons)
    out = {"decision": decision, "reasons": reasons, "metrics": medians, **v.to_json(),
           "flags": [f.to_json() for f in flags]}
    out["reasons"] = reasons
    if decision == "ACCEPTED":
        out["best"] = {"status": "measured", "metrics": medians,
                       "spread": json.loads(evaluation["spread_json"] or "{}"),
                       "submission_id": evaluation["submission_id"]}
    return out
