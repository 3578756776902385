"""The stability bar itself: a gain exactly at g0 - tolerance x i holds (binary-exact numbers,
so the comparison is the rule's, not rounding's); a hair below does not."""

from __future__ import annotations

from l402tui.coordinator import stability


def test_a_gain_exactly_at_the_bar_holds_and_one_just_below_does_not():
    kw = dict(improvement=0.5, gain_when_accepted=0.5, tolerance=0.25, heldout_set=1)  # bar: 0.375
    assert stability.judge(gain_now=0.375, **kw).holds
    assert not stability.judge(gain_now=0.375 - 2 ** -30, **kw).holds
    assert stability.judge(gain_now=0.5, **kw).holds
