"""Turn a finished held-out evaluation into a decision: ACCEPTED, REJECTED or FLAGGED.

The arithmetic (composite gain vs the current best, guards, the k·σ bar) is
``l402tui.evaluation.scoring``; the gaming checks are ``l402tui.evaluation.antigaming``.
This module gathers their inputs from the rows, combines their answers into one
typed :class:`Verdict`, and rounds what may be published on the *ladder*:

- the **step** is the bounty's acceptance bar at the baseline, max(min_improvement,
  k·σ), in the units of the composite gain;
- the improvement over the baseline that payouts use is floored to a whole number
  of steps (rounding in the pool's favour), so an accepted submission's payout
  tells its agent nothing finer than its published, rounded score;
- a rejected submission publishes no held-out number at all.

Why: every verdict answers one adaptive query on the held-out set.  Publishing
only "did not beat the best by the margin" (one bit) and, for the few accepted,
a score rounded to the noise step bounds how much a stream of submissions can
learn of the held-out set (Blum & Hardt, "The Ladder", ICML 2015).
``docs/verdicts.md`` says what an agent sees and why.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from l402tui.domain import PAYABLE, sql_list
from l402tui.evaluation import reasons as R

if TYPE_CHECKING:
    from l402tui.bounty import BountySpec
    from l402tui.coordinator.core import CoordinatorCore

DECISIONS = ("ACCEPTED", "REJECTED", "FLAGGED")


@dataclass
class Verdict:
    """A submission's verdict as stored (``submissions.verdict_json``).

    ``codes`` are what an agent may learn (:mod:`l402tui.evaluation.reasons`);
    ``reasons`` are the operator's and sponsor's detail and never leave their views."""

    decision: str
    codes: list[str]
    reasons: list[str] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    improvement: float | None = None  # composite gain over the current best, as measured
    improvement_vs_baseline: float | None = None  # over the baseline, floored to the ladder step
    improvement_vs_baseline_measured: float | None = None
    threshold: float | None = None
    step: float | None = None
    payout_fraction: float = 0.0
    flags: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] | None = None  # the bounty's new best, when ACCEPTED
    published: dict[str, Any] | None = None  # the ladder-rounded numbers an agent may see, when ACCEPTED
    decided_at: float | None = None
    reveal_at: float | None = None  # when an agent may see it (coordinator/disclosure.py)

    def __post_init__(self) -> None:
        if self.decision not in DECISIONS:
            raise ValueError(f"unknown decision {self.decision!r}")

    @classmethod
    def rejected(cls, code: str, detail: str) -> "Verdict":
        return cls("REJECTED", [code], [detail])

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any] | str | None) -> "Verdict | None":
        """A stored verdict, or None when there is none.  Verdicts written before codes
        existed read back with the generic code of their decision (their free text stays detail)."""
        if isinstance(data, str):
            data = json.loads(data) if data else None
        if not data:
            return None
        known = {f for f in cls.__dataclass_fields__}
        fields = {k: v for k, v in data.items() if k in known}
        fields.setdefault("codes", [])
        fields.setdefault("reasons", [])
        return cls(**fields)


def ladder_step(spec: "BountySpec", threshold: float) -> float:
    """The publication step in composite-gain units: the acceptance bar, never zero."""
    return max(threshold, spec.min_improvement, 1e-6)


def floor_to_step(value: float, step: float) -> float:
    """``value`` floored to a whole number of steps; a non-finite value is worth nothing (0)."""
    if not math.isfinite(value):
        return 0.0
    # A little tolerance so a value that is a whole number of steps is not floored one below.
    return math.floor(value / step + 1e-9) * step


def published_numbers(spec: "BountySpec", medians: dict[str, float], baseline: dict[str, float],
                      improvement_vs_baseline: float, step: float) -> dict[str, Any]:
    """What an accepted submission publishes: its primary metric and improvement, rounded to the step."""
    primary = spec.primary_metric.name
    score = medians.get(primary)
    if spec.target_kind == "relative":
        metric_step = step * abs(baseline.get(primary) or 0.0) or step
    else:
        metric_step = step
    rounded = None if score is None else round(round(score / metric_step) * metric_step, 12)
    return {"metric": primary, "score": rounded, "score_step": round(metric_step, 12),
            "improvement": round(improvement_vs_baseline, 12), "improvement_step": round(step, 12)}


async def judge(coord: "CoordinatorCore", spec: "BountySpec", bounty: dict[str, Any], baseline: dict[str, Any],
                evaluation: dict[str, Any]) -> Verdict:
    from l402tui.evaluation import antigaming, scoring

    medians = json.loads(evaluation["metrics_json"] or "{}")
    best = json.loads(bounty["best_json"] or "null")
    best_medians = best["metrics"] if best and best.get("submission_id") else None
    base_medians, base_spreads = baseline["metrics"], baseline.get("spread") or {}
    v = scoring.verdict(spec, medians, baseline_medians=base_medians, baseline_spreads=base_spreads,
                        best_medians=best_medians)
    step = ladder_step(spec, scoring.acceptance_threshold(spec, base_medians, base_spreads))

    runs = await coord.store.fetchall(
        "SELECT metrics_json, outputs_sha256 FROM eval_runs WHERE evaluation_id = ? ORDER BY repeat",
        (evaluation["eval_id"],))
    run_metrics = [json.loads(r["metrics_json"]) for r in runs if r["metrics_json"]] or [medians]
    submission_id = evaluation["submission_id"]
    flags = [f for f in (
        antigaming.canary_flag(run_metrics),
        antigaming.honeypot_flag(run_metrics, spec.honeypot_alpha),
        await _copied_diff(coord, antigaming, bounty["id"], submission_id),
        _overfit(coord, antigaming, spec, baseline, evaluation, medians),
        await _same_outputs(coord, antigaming, bounty["id"], submission_id,
                            runs[0]["outputs_sha256"] if runs else None)
        if antigaming.outputs_identify_submission(spec) else None,
    ) if f is not None]

    if flags:
        decision = "FLAGGED"
        codes = [R.flagged(f.kind) for f in flags]
        detail = [f.reason for f in flags]
    elif v.accepted:
        decision, codes, detail = "ACCEPTED", [], []
    else:
        decision = "REJECTED"
        codes = [R.guard_failed(name) for name in scoring.failed_guards(spec, medians, base_medians)]
        if not v.improvement > v.threshold:  # NaN included
            codes.append(R.Reason.BELOW_THRESHOLD.value)
        detail = list(v.reasons)
    paid_basis = floor_to_step(v.improvement_vs_baseline, step)
    out = Verdict(decision, codes, detail, metrics=medians, improvement=v.improvement,
                  improvement_vs_baseline=paid_basis, improvement_vs_baseline_measured=v.improvement_vs_baseline,
                  threshold=v.threshold, step=step, payout_fraction=v.payout_fraction,
                  flags=[f.to_json() for f in flags])
    if decision == "ACCEPTED":
        out.published = published_numbers(spec, medians, base_medians, paid_basis, step)
        out.best = {"status": "measured", "metrics": medians,
                    "spread": json.loads(evaluation["spread_json"] or "{}"),
                    "submission_id": submission_id, "published": out.published}
    return out


def _overfit(coord: "CoordinatorCore", antigaming: Any, spec: "BountySpec", baseline: dict[str, Any],
             evaluation: dict[str, Any], medians: dict[str, float]):
    """Public gain far above the held-out gain: tuned to the public set.  Both measured by the
    coordinator (one public run beside the held-out repeats), over the weighted metrics the
    scorer reports: harness timings of one run are too noisy to compare."""
    from l402tui.evaluation.scoring import metric_gain

    public = json.loads(evaluation.get("public_metrics_json") or "null")
    public_base = baseline.get("public")
    scored = [m for m in spec.metrics if m.weight > 0 and m.source == "score"]
    if not public or not public_base or not scored:
        return None
    names = [m.name for m in scored]
    if any(n not in public or n not in public_base or n not in medians or n not in baseline["metrics"]
           for n in names):
        return None
    total = sum(m.weight for m in scored)
    relative = spec.target_kind == "relative"

    def gain(new: dict[str, float], ref: dict[str, float]) -> float:
        return sum(m.weight * metric_gain(m, new[m.name], ref[m.name], relative=relative) for m in scored) / total

    return antigaming.overfit_flag(gain(public, public_base), gain(medians, baseline["metrics"]),
                                   float(coord.cfg.get("evaluation.overfit_gap")))


async def _copied_diff(coord: "CoordinatorCore", antigaming: Any, bounty_id: str, submission_id: str):
    """Someone else's earlier diff resubmitted (or reworded) earns nothing.  "Someone else"
    is any other token (an agent's own earlier diffs through the same token are its own work).

    Nor does the same code measured again: a diff whose normalised change is exactly that of
    the token's own earlier submission *measured* on the held-out set (its verdict has metrics)
    can only differ from it by noise, so a gain it shows is a lucky draw, not an improvement
    (re-rolling the current best, or a rejected diff, until the timing noise clears the bar).
    A resubmission after a failure that measured nothing (the coordinator's, or a time limit)
    is judged as usual."""
    submission = await coord.store.fetchone("SELECT diff, token_id, created_at FROM submissions WHERE id = ?",
                                            (submission_id,))
    earlier = await coord.store.fetchall(
        "SELECT id, diff FROM submissions WHERE bounty_id = ? AND id != ? AND created_at <= ? "
        "AND (token_id IS NULL OR token_id != ?)",
        (bounty_id, submission_id, submission["created_at"], submission["token_id"]))
    flag = antigaming.near_duplicate_flag(submission["diff"], [(r["id"], r["diff"]) for r in earlier],
                                          float(coord.cfg.get("evaluation.near_duplicate_threshold")))
    if flag is not None:
        return flag
    own = await coord.store.fetchall(
        "SELECT id, diff, verdict_json FROM submissions WHERE bounty_id = ? AND id != ? AND created_at <= ? "
        "AND token_id = ? AND verdict_json IS NOT NULL", (bounty_id, submission_id, submission["created_at"],
                                                          submission["token_id"]))
    measured = [(r["id"], r["diff"]) for r in own if (Verdict.from_json(r["verdict_json"]) or Verdict(
        "REJECTED", [])).metrics]
    return antigaming.near_duplicate_flag(submission["diff"], measured, 1.0)


async def _same_outputs(coord: "CoordinatorCore", antigaming: Any, bounty_id: str, submission_id: str,
                        digest: str | None):
    """Identical held-out outputs to an earlier accepted submission: the same predictions."""
    if digest is None:
        return None
    earlier = await coord.store.fetchall(
        "SELECT s.id, r.outputs_sha256 FROM submissions s JOIN evaluations e ON e.submission_id = s.id "
        "AND e.kind = 'submission' JOIN eval_runs r ON r.evaluation_id = e.id AND r.repeat = 0 "
        "WHERE s.bounty_id = ? AND s.id != ? AND e.heldout_set = 0 AND r.outputs_sha256 IS NOT NULL "
        f"AND s.status IN {sql_list(PAYABLE)}",
        (bounty_id, submission_id))
    return antigaming.same_outputs_flag(digest, [(r["id"], r["outputs_sha256"]) for r in earlier])
