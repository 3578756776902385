"""The payout rule's guards, each fed the out-of-range input it exists to refuse.

``payout_math`` is pure: these need no world.  Each case is the smallest input one guard
refuses and its neighbour inside the range is accepted, so moving a bound fails a test.
"""

from __future__ import annotations

import json
import math

import pytest

from l402tui.coordinator.payout_math import (PayoutTermsError, bounty_terms, cumulative_split, step_split,
                                             verdict_improvement, verdict_level)

KW = dict(pool_msat=100_000_000, target=0.05)


def test_a_fee_of_the_whole_payout_is_refused():
    assert cumulative_split(level=0.05, fee_percent=99.5, holdback_percent=20, **KW).fee_msat == 99_500_000
    with pytest.raises(PayoutTermsError, match="fee_percent is 100"):
        cumulative_split(level=0.05, fee_percent=100, holdback_percent=20, **KW)
    with pytest.raises(PayoutTermsError, match="fee_percent is -1"):
        cumulative_split(level=0.05, fee_percent=-1, holdback_percent=20, **KW)


def test_a_holdback_over_the_whole_net_is_refused():
    """100 % held back is allowed (nothing now); more would owe the agent a negative amount."""
    whole = cumulative_split(level=0.05, fee_percent=0, holdback_percent=100, **KW)
    assert (whole.now_msat, whole.holdback_msat) == (0, 100_000_000)
    for bad in (100.5, 150, -1):
        with pytest.raises(PayoutTermsError, match=f"holdback_percent is {bad}"):
            cumulative_split(level=0.05, fee_percent=0, holdback_percent=bad, **KW)
        with pytest.raises(PayoutTermsError, match="holdback_percent"):
            step_split(pool_msat=100_000_000, left_msat=100_000_000, level_before=0.0, level=0.05, target=0.05,
                       fee_percent=0, holdback_percent=bad)


def test_a_zero_or_negative_target_is_refused_even_with_nothing_to_pay():
    for target in (0, 0.0, -0.05):
        with pytest.raises(PayoutTermsError, match="target improvement"):
            cumulative_split(pool_msat=100_000_000, level=0.0, target=target, fee_percent=0, holdback_percent=0)


def test_the_holdback_is_cut_from_the_net_after_the_fee():
    split = cumulative_split(level=0.05, fee_percent=10, holdback_percent=50, **KW)
    assert (split.gross_msat, split.fee_msat, split.holdback_msat, split.now_msat) == (
        100_000_000, 10_000_000, 45_000_000, 45_000_000)


def test_a_step_never_takes_more_than_is_left():
    """The rule asks for 40 M; 1 M is left: the step is what is left, split directly."""
    split = step_split(pool_msat=100_000_000, left_msat=1_000_000, level_before=0.0, level=0.02, target=0.05,
                       fee_percent=10, holdback_percent=20)
    assert split.gross_msat == 1_000_000
    assert split.fee_msat + split.now_msat + split.holdback_msat == 1_000_000
    assert step_split(pool_msat=100_000_000, left_msat=39_999_999, level_before=0.0, level=0.02, target=0.05,
                      fee_percent=10, holdback_percent=20).gross_msat == 39_999_999


def _bounty(**spec) -> dict:
    return {"id": "b-1", "pool_msat": 1_000_000, "spec_json": json.dumps({"target": {"improvement": 0.05}, **spec})}


def test_a_stake_keep_share_outside_0_to_100_is_refused():
    assert bounty_terms(_bounty(rejected_stake_keep_percent=100)).rejected_stake_keep_percent == 100.0
    assert bounty_terms(_bounty(rejected_stake_keep_percent=0)).rejected_stake_keep_percent == 0.0
    for bad in (100.5, 250, -1, "nan"):
        with pytest.raises(PayoutTermsError, match="rejected_stake_keep_percent"):
            bounty_terms(_bounty(rejected_stake_keep_percent=float(bad)))


def _sub(**verdict) -> dict:
    return {"id": "s-1", "verdict_json": json.dumps(verdict)}


@pytest.mark.parametrize("bad", [True, False, math.nan, math.inf, -math.inf, "0.02", None])
def test_a_verdict_number_that_is_not_a_finite_number_pays_nothing(bad):
    """json.dumps writes NaN/Infinity and json.loads reads them back; a bool is an int to Python."""
    with pytest.raises(PayoutTermsError, match="no numeric 'improvement_vs_baseline'"):
        verdict_level(_sub(improvement=0.02, improvement_vs_baseline=bad))
    with pytest.raises(PayoutTermsError, match="no numeric 'improvement'"):
        verdict_improvement(_sub(improvement=bad, improvement_vs_baseline=0.02))


def test_the_paid_level_is_the_improvement_over_the_baseline_not_over_the_best():
    assert verdict_level(_sub(improvement=0.01, improvement_vs_baseline=0.03)) == 0.03
    assert verdict_improvement(_sub(improvement=0.01, improvement_vs_baseline=0.03)) == 0.01
