"""The publication ladder's step is the acceptance bar when that is the largest of the three
(the bar, the bounty's minimum improvement, a millionth), so a published best never
reveals more than a gain of one whole bar."""

from __future__ import annotations

from types import SimpleNamespace

from l402tui.coordinator.verdict import floor_to_step, ladder_step


def test_the_step_is_the_largest_of_the_bar_the_minimum_and_a_millionth():
    spec = SimpleNamespace(min_improvement=0.001)
    assert ladder_step(spec, 0.05) == 0.05
    assert ladder_step(spec, 0.0005) == 0.001
    assert ladder_step(SimpleNamespace(min_improvement=0.0), 0.0) == 1e-6
    assert floor_to_step(0.123, ladder_step(spec, 0.05)) == 0.1
