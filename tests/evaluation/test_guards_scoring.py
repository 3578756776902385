"""The scorer's bars at their edges: a gain exactly at the bar is not above it, and a guard
regressing a little beyond its tolerance fails whatever the composite says."""

from __future__ import annotations

import pytest

from l402tui.bounty import load_bounty
from l402tui.evaluation.scoring import failed_guards, verdict
from tinybounty import make_sums

TWO_METRICS = ('[[metrics]]\nname = "accuracy"\ndirection = "maximize"\nweight = 1\nguard = true\ntolerance = 0.01\n\n'
               '[[metrics]]\nname = "cpu_s"\ndirection = "minimize"\nweight = 3\nsource = "harness"\n')
BASE = {"accuracy": 1.0, "cpu_s": 1.0}


@pytest.fixture
def spec(tmp_path):
    return load_bounty(make_sums(tmp_path / "b", metrics=TWO_METRICS))


def test_a_gain_exactly_at_the_bar_is_rejected(spec):
    """Every number here is exact in binary: gain 3 × 0.5 / 4 = 0.375; bar 2 σ = 2 × 3 × 0.25 / 4 = 0.375."""
    at = verdict(spec, {"accuracy": 1.0, "cpu_s": 0.5}, baseline_medians=BASE,
                 baseline_spreads={"accuracy": 0.0, "cpu_s": 0.25})
    assert at.improvement == at.threshold == 0.375
    assert not at.accepted and at.payout_fraction == 0.0 and at.reasons
    above = verdict(spec, {"accuracy": 1.0, "cpu_s": 0.5}, baseline_medians=BASE,
                    baseline_spreads={"accuracy": 0.0, "cpu_s": 0.25 - 2 ** -20})
    assert above.accepted


def test_a_guard_just_beyond_its_tolerance_fails_despite_a_large_gain(spec):
    new = {"accuracy": 0.98, "cpu_s": 0.1}  # 2 % accuracy lost, tolerance 1 %; cpu 90 % faster
    assert failed_guards(spec, new, BASE) == ["accuracy"]
    v = verdict(spec, new, baseline_medians=BASE, baseline_spreads={"accuracy": 0.0, "cpu_s": 0.01})
    assert not v.accepted and any("guard accuracy regressed" in r for r in v.reasons)
    within = {"accuracy": 0.995, "cpu_s": 0.1}
    assert failed_guards(spec, within, BASE) == []


def test_a_gain_over_the_baseline_that_overflows_is_no_gain(spec):
    """Finite against the current best (9×) but infinite against a tiny baseline (1e300 / 1e-11
    overflows): an infinite level would pay the whole pool, so it is rejected."""
    base = {"accuracy": 1e-11, "cpu_s": 1.0}
    v = verdict(spec, {"accuracy": 1e300, "cpu_s": 1.0}, baseline_medians=base,
                baseline_spreads={"accuracy": 0.0, "cpu_s": 0.0}, best_medians={"accuracy": 1e299, "cpu_s": 1.0})
    assert v.improvement == pytest.approx(2.25) and v.improvement_vs_baseline == float("inf")
    assert not v.accepted and v.payout_fraction == 0.0


def test_an_improvement_beyond_the_target_earns_at_most_the_whole_pool(spec):
    v = verdict(spec, {"accuracy": 1.0, "cpu_s": 0.01}, baseline_medians=BASE,
                baseline_spreads={"accuracy": 0.0, "cpu_s": 0.01})
    assert v.accepted and v.improvement > spec.target_improvement
    assert v.payout_fraction == 1.0


def test_the_paid_improvement_is_floored_to_the_ladder_step_never_rounded_up():
    from l402tui.coordinator.verdict import floor_to_step

    assert floor_to_step(0.029, 0.01) == pytest.approx(0.02)
    assert floor_to_step(0.03, 0.01) == pytest.approx(0.03)  # a whole number of steps stays
    assert floor_to_step(0.0099, 0.01) == 0.0
