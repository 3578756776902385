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
import statistics
from dataclasses import dataclass

from l402tui.agent.public_eval import PublicScore
from l402tui.bounty.spec import BountySpec
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
    """Per-metric σ estimated as 1.4826 × the median absolute deviation of the repeats.

    On a busy machine one repeat in three can take twice as long; the sample stdev then
    swamps any real gain, while the MAD ignores the one outlier.  Without the per-repeat
    values (or with fewer than 3) the harness's stdev is used."""
    out = dict(score.spread)
    for name, values in score.samples.items():
        if len(values) >= 3:
            med = statistics.median(values)
            out[name] = 1.4826 * statistics.median(abs(v - med) for v in values)
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
