"""From metric medians to a verdict: composite gain, guards, the noise-aware bar.

- *Gain* of one metric: the relative change in its better direction,
  ``(old - new) / |old|`` when minimising, ``(new - old) / |old|`` when maximising
  (an absolute change when ``old`` is 0, where a ratio means nothing).  A bounty
  with ``target.kind = "absolute"`` uses the plain difference of its one weighted
  metric instead.
- *Composite*: the weight-averaged gain over the metrics with weight > 0.
- *Improvement* is measured against the bounty's **current best** (the last
  accepted medians; the baseline until then), so accepted improvements stack.
- *Guards* (``guard = true``) must not regress by more than their ``tolerance``
  against the baseline, whatever the composite says.
- *Acceptance* needs improvement > max(min_improvement, k·σ), σ being the
  baseline's spread in the same units (relative, or absolute for "absolute").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping

from l402tui.bounty.spec import BountySpec, Metric

EPS = 1e-12


def metric_gain(metric: Metric, new: float, old: float, *, relative: bool = True) -> float:
    """How much better ``new`` is than ``old`` (positive = better)."""
    delta = (old - new) if metric.direction == "minimize" else (new - old)
    if not relative or abs(old) < EPS:
        return delta
    return delta / abs(old)


def _weighted(spec: BountySpec) -> list[Metric]:
    return [m for m in spec.metrics if m.weight > 0]


def composite_gain(spec: BountySpec, new: Mapping[str, float], ref: Mapping[str, float]) -> float:
    """Weight-averaged gain of ``new`` over ``ref`` (absolute difference for absolute targets)."""
    metrics = _weighted(spec)
    relative = spec.target_kind == "relative"
    missing = [m.name for m in metrics if m.name not in new or m.name not in ref]
    if missing:
        raise KeyError(f"metric(s) {', '.join(missing)} missing from the medians")
    total = sum(m.weight for m in metrics)
    return sum(m.weight * metric_gain(m, new[m.name], ref[m.name], relative=relative) for m in metrics) / total


def noise_sigma(spec: BountySpec, medians: Mapping[str, float], spreads: Mapping[str, float]) -> float:
    """The baseline's spread in the units of :func:`composite_gain`."""
    metrics = _weighted(spec)
    total = sum(m.weight for m in metrics)
    sigma = 0.0
    for m in metrics:
        spread = spreads.get(m.name, 0.0)
        if spec.target_kind == "relative" and abs(medians.get(m.name, 0.0)) >= EPS:
            spread /= abs(medians[m.name])
        sigma += m.weight * spread
    return sigma / total


def acceptance_threshold(spec: BountySpec, baseline_medians: Mapping[str, float],
                         baseline_spreads: Mapping[str, float]) -> float:
    return max(spec.min_improvement, spec.k_sigma * noise_sigma(spec, baseline_medians, baseline_spreads))


def failed_guards(spec: BountySpec, new: Mapping[str, float], baseline: Mapping[str, float]) -> list[str]:
    """Names of the guard metrics that were not reported, are not finite, or regressed beyond
    their tolerance.  Written so that a NaN fails: "held within tolerance" must be shown true."""
    return [m.name for m in spec.metrics if m.guard and m.name in baseline and not (
        m.name in new and math.isfinite(new[m.name])
        and -metric_gain(m, new[m.name], baseline[m.name]) <= m.tolerance + EPS)]


def guard_failures(spec: BountySpec, new: Mapping[str, float], baseline: Mapping[str, float]) -> list[str]:
    reasons = []
    for name in failed_guards(spec, new, baseline):
        m = next(x for x in spec.metrics if x.name == name)
        if m.name not in new or not math.isfinite(new[m.name]):
            reasons.append(f"guard metric {m.name} was not reported as a finite number")
            continue
        regression = -metric_gain(m, new[m.name], baseline[m.name])
        reasons.append(f"guard {m.name} regressed by {regression:.2%} (from {baseline[m.name]:g} to "
                       f"{new[m.name]:g}); at most {m.tolerance:.2%} is allowed")
    return reasons


@dataclass
class Verdict:
    accepted: bool
    improvement: float  # over the current best
    improvement_vs_baseline: float
    threshold: float
    payout_fraction: float  # of the pool: improvement / target, in [0, 1]; the coordinator caps by what is left
    reasons: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"accepted": self.accepted, "improvement": self.improvement,
                "improvement_vs_baseline": self.improvement_vs_baseline, "threshold": self.threshold,
                "payout_fraction": self.payout_fraction, "reasons": list(self.reasons)}


def verdict(spec: BountySpec, medians: Mapping[str, float], *, baseline_medians: Mapping[str, float],
            baseline_spreads: Mapping[str, float], best_medians: Mapping[str, float] | None = None) -> Verdict:
    """Accept or reject candidate medians against the current best, with reasons."""
    best = best_medians or baseline_medians
    improvement = composite_gain(spec, medians, best)
    vs_baseline = composite_gain(spec, medians, baseline_medians)
    threshold = acceptance_threshold(spec, baseline_medians, baseline_spreads)
    reasons = guard_failures(spec, medians, baseline_medians)
    unit = "" if spec.target_kind == "absolute" else " (relative)"
    # Every comparison below is written so that NaN loses: a NaN (or infinite) gain is no gain.
    beats = math.isfinite(improvement) and math.isfinite(vs_baseline) and improvement > threshold
    if not beats:
        what = "the current best" if best_medians else "the baseline"
        reasons.append(f"improvement over {what} is {_fmt(spec, improvement)}{unit}; more than "
                       f"{_fmt(spec, threshold)} is needed (max of min_improvement {_fmt(spec, spec.min_improvement)}"
                       f" and {spec.k_sigma:g}·σ of the baseline noise)")
    accepted = not reasons
    fraction = min(1.0, max(0.0, improvement / spec.target_improvement)) if accepted else 0.0
    return Verdict(accepted, improvement, vs_baseline, threshold, fraction, reasons)


def _fmt(spec: BountySpec, value: float) -> str:
    return f"{value:.4g}" if spec.target_kind == "absolute" else f"{value:.2%}"
