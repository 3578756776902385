"""Is a candidate better than the best so far, by more than the noise?

The arithmetic is the coordinator's (:mod:`l402tui.evaluation.scoring`): the composite
gain over the current best, guards against the baseline.  The agent's bar differs: it
is only the noise, k·σ, with σ the standard error of the difference between the two
scores, each taken over the bounty's repeats: sqrt(σ_best²/n + σ_candidate²/n), where
each σ is estimated robustly (:func:`robust_spread`).
The bounty's ``min_improvement`` is for submitting, not for keeping a step (small kept
steps add up).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from l402tui.agent.public_eval import PublicScore
from l402tui.bounty.spec import BountySpec
from l402tui.evaluation import stats
from l402tui.evaluation.scoring import composite_gain, guard_failures, noise_sigma


@dataclass(frozen=True)
class Judgement:
    better: bool
    improvement: float  # composite gain over the best (relative, or absolute for "absolute" bounties)
    margin: float  # the noise margin it had to beat
    reason: str


def headline(spec: BountySpec, score: PublicScore) -> float:
    """The number results.tsv records: the primary (heaviest) metric's median."""
    return score.metrics[spec.primary_metric.name]


def robust_spread(score: PublicScore) -> dict[str, float]:
    """Per-metric σ from the repeats, as the coordinator computes it
    (:func:`l402tui.evaluation.stats.spread`); the harness's spread where the
    per-repeat values are not known."""
    out = dict(score.spread)
    for name, values in score.samples.items():
        if len(values) >= 2:
            out[name] = stats.spread(values)
    return out


def judge(spec: BountySpec, candidate: PublicScore, best: PublicScore, k_sigma: float,
          baseline: PublicScore | None = None) -> Judgement:
    missing = [m.name for m in spec.metrics if m.name not in candidate.metrics]
    if missing:
        return Judgement(False, 0.0, 0.0, f"metric(s) {', '.join(missing)} were not reported")
    gain = composite_gain(spec, candidate.metrics, best.metrics)
    # σ of the difference of two averages of n repeats each: sqrt(σb²/nb + σc²/nc).
    sb = noise_sigma(spec, best.metrics, robust_spread(best))
    sc = noise_sigma(spec, candidate.metrics, robust_spread(candidate))
    margin = k_sigma * math.sqrt(sb * sb / max(best.repeats, 1) + sc * sc / max(candidate.repeats, 1))
    unit = "" if spec.target_kind == "absolute" else "%"
    fmt = (lambda v: f"{v:+.4g}") if unit == "" else (lambda v: f"{v:+.3%}")
    guards = guard_failures(spec, candidate.metrics, (baseline or best).metrics)
    if guards:
        return Judgement(False, gain, margin, "; ".join(guards))
    if gain > margin:
        return Judgement(True, gain, margin, f"{fmt(gain)} better (noise margin {fmt(margin)[1:]})")
    if gain > 0:
        return Judgement(False, gain, margin, f"{fmt(gain)} is within the noise margin {fmt(margin)[1:]}")
    return Judgement(False, gain, margin, f"{fmt(gain)}: not better")
