"""Is a candidate better than the best so far, by more than the noise?

The bounty's metrics combine as on the coordinator: a weighted mean of relative
improvements (direction-aware), guards that must not regress beyond their tolerance.
The noise margin is k·σ: each metric's larger spread (candidate or best, from the
repeats) relative to the best value, weighted the same way.  With one repeat the
spread is 0 and any strict improvement counts.
"""

from __future__ import annotations

from dataclasses import dataclass

from l402tui.agent.public_eval import PublicScore
from l402tui.bounty.spec import BountySpec, Metric

_TINY = 1e-12


@dataclass(frozen=True)
class Judgement:
    better: bool
    improvement: float  # weighted relative improvement (0.02 = 2 % better)
    margin: float  # the noise margin it had to beat
    reason: str


def relative_gain(metric: Metric, new: float, old: float) -> float:
    delta = (old - new) if metric.direction == "minimize" else (new - old)
    return delta / max(abs(old), _TINY)


def headline(spec: BountySpec, score: PublicScore) -> float:
    """The number results.tsv records: the primary (heaviest) metric's median."""
    return score.metrics[spec.primary_metric.name]


def judge(spec: BountySpec, candidate: PublicScore, best: PublicScore, k_sigma: float) -> Judgement:
    weighted = [m for m in spec.metrics if m.weight > 0]
    total = sum(m.weight for m in weighted)
    gain = margin = 0.0
    for m in weighted:
        old = best.metrics[m.name]
        gain += m.weight * relative_gain(m, candidate.metrics[m.name], old)
        sigma = max(candidate.spread.get(m.name, 0.0), best.spread.get(m.name, 0.0))
        margin += m.weight * k_sigma * sigma / max(abs(old), _TINY)
    gain /= total
    margin /= total
    for m in spec.metrics:
        if not m.guard:
            continue
        old = best.metrics[m.name]
        regress = -relative_gain(m, candidate.metrics[m.name], old)
        sigma = max(candidate.spread.get(m.name, 0.0), best.spread.get(m.name, 0.0))
        allowed = m.tolerance + k_sigma * sigma / max(abs(old), _TINY)
        if regress > allowed:
            return Judgement(False, gain, margin, f"guard {m.name} regressed {regress:.2%} "
                             f"(allowed {allowed:.2%})")
    if gain > margin:
        return Judgement(True, gain, margin, f"{gain:+.3%} better (noise margin {margin:.3%})")
    if gain > 0:
        return Judgement(False, gain, margin, f"{gain:+.3%} is within the noise margin {margin:.3%}")
    return Judgement(False, gain, margin, f"{gain:+.3%}: not better")
