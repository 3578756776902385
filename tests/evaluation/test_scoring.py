"""Composite gain, guards, stacking on the current best, and the noise-aware bar."""

from __future__ import annotations

import pytest

from l402tui.bounty import load_bounty
from l402tui.evaluation.scoring import acceptance_threshold, composite_gain, metric_gain, verdict
from l402tui.bounty.spec import Metric
from tinybounty import make_sums

TWO_METRICS = ('[[metrics]]\nname = "accuracy"\ndirection = "maximize"\nweight = 1\nguard = true\ntolerance = 0.01\n\n'
               '[[metrics]]\nname = "cpu_s"\ndirection = "minimize"\nweight = 3\nsource = "harness"\n')


@pytest.fixture
def spec(tmp_path):
    return load_bounty(make_sums(tmp_path / "b", metrics=TWO_METRICS))


def test_metric_gain_follows_direction():
    fast = Metric("cpu_s", "minimize")
    acc = Metric("accuracy", "maximize")
    assert metric_gain(fast, 0.5, 1.0) == 0.5
    assert metric_gain(acc, 0.9, 1.0) == pytest.approx(-0.1)
    assert metric_gain(acc, 0.3, 0.0) == 0.3  # from zero: absolute, since a ratio means nothing


def test_composite_is_weight_averaged(spec):
    gain = composite_gain(spec, {"accuracy": 1.0, "cpu_s": 0.5}, {"accuracy": 1.0, "cpu_s": 1.0})
    assert gain == pytest.approx(3 * 0.5 / 4)


def test_threshold_is_max_of_min_improvement_and_k_sigma(spec):
    quiet = acceptance_threshold(spec, {"accuracy": 1.0, "cpu_s": 1.0}, {"accuracy": 0.0, "cpu_s": 0.01})
    noisy = acceptance_threshold(spec, {"accuracy": 1.0, "cpu_s": 1.0}, {"accuracy": 0.0, "cpu_s": 0.2})
    assert quiet == 0.05  # min_improvement
    assert noisy == pytest.approx(2.0 * 3 * 0.2 / 4)  # k_sigma 2 × weighted relative spread


def test_accepts_a_real_improvement_and_pays_in_proportion(spec):
    v = verdict(spec, {"accuracy": 1.0, "cpu_s": 0.6}, baseline_medians={"accuracy": 1.0, "cpu_s": 1.0},
                baseline_spreads={"accuracy": 0.0, "cpu_s": 0.01})
    assert v.accepted and v.reasons == []
    assert v.improvement == pytest.approx(0.3)
    assert v.payout_fraction == pytest.approx(0.6)  # 0.3 of a 0.5 target


def test_guard_regression_rejects_even_a_big_speed_up(spec):
    v = verdict(spec, {"accuracy": 0.5, "cpu_s": 0.1}, baseline_medians={"accuracy": 1.0, "cpu_s": 1.0},
                baseline_spreads={})
    assert not v.accepted
    assert v.reasons == ["guard accuracy regressed by 50.00% (from 1 to 0.5); at most 1.00% is allowed"]
    assert v.payout_fraction == 0.0


def test_improvements_stack_on_the_current_best(spec):
    baseline = {"accuracy": 1.0, "cpu_s": 1.0}
    best = {"accuracy": 1.0, "cpu_s": 0.6}
    v = verdict(spec, {"accuracy": 1.0, "cpu_s": 0.58}, baseline_medians=baseline, baseline_spreads={},
                best_medians=best)
    assert not v.accepted
    assert v.improvement_vs_baseline == pytest.approx(0.315)
    assert v.reasons == ["improvement over the current best is 2.50% (relative); more than 5.00% is needed "
                         "(max of min_improvement 5.00% and 2·σ of the baseline noise)"]


def test_noise_blocks_improvements_inside_the_spread(spec):
    v = verdict(spec, {"accuracy": 1.0, "cpu_s": 0.8}, baseline_medians={"accuracy": 1.0, "cpu_s": 1.0},
                baseline_spreads={"cpu_s": 0.2})
    assert not v.accepted and v.threshold == pytest.approx(0.3)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_a_non_finite_gain_is_never_accepted(spec, bad):
    # NaN loses every comparison: written as "improvement <= threshold" it was accepted (and a
    # NaN best then let every later submission through); inf paid the whole pool.
    base = {"accuracy": 1.0, "cpu_s": 1.0}
    v = verdict(spec, {"accuracy": 1.0, "cpu_s": bad}, baseline_medians=base, baseline_spreads={})
    assert not v.accepted and v.payout_fraction == 0.0
    v = verdict(spec, {"accuracy": 1.0, "cpu_s": 0.5}, baseline_medians=base, baseline_spreads={},
                best_medians={"accuracy": 1.0, "cpu_s": float("nan")})
    assert not v.accepted


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_a_non_finite_guard_fails(spec, bad):
    base = {"accuracy": 1.0, "cpu_s": 1.0}
    v = verdict(spec, {"accuracy": bad, "cpu_s": 0.5}, baseline_medians=base, baseline_spreads={})
    assert not v.accepted
    assert "guard metric accuracy was not reported as a finite number" in v.reasons
