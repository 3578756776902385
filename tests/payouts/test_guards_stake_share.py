"""The share of a stake kept: rounded down to the msat (the rest belongs to the agent who
staked it), and never more than the stake, whatever percentage it is asked for."""

from __future__ import annotations

import pytest

from l402tui.coordinator.payout_stakes import kept_msat


@pytest.mark.parametrize("amount, percent, kept", [(9, 95.0, 8), (1_003, 50.0, 501), (1_000_001, 50.0, 500_000),
                                                   (999, 99.9, 998), (1_000, 100.0, 1_000), (1_000, 0.0, 0)])
def test_the_kept_share_is_rounded_down_to_the_msat(amount, percent, kept):
    assert kept_msat(amount, percent) == kept


@pytest.mark.parametrize("percent", [100.5, 150.0, 1_000.0])
def test_the_kept_share_is_never_more_than_the_stake(percent):
    assert kept_msat(2_000, percent) == 2_000
