"""Canaries, the public/held-out gap and near-duplicate diffs raise flags."""

from __future__ import annotations

from l402tui.evaluation.antigaming import canary_flag, diff_similarity, near_duplicate_flag, overfit_flag
from tinybounty import FIX_DIFF


def test_canary_match_on_any_repeat_flags():
    assert canary_flag([{"canary_matches": 0.0}, {"canary_matches": 0.0}]) is None
    flag = canary_flag([{"canary_matches": 0.0}, {"canary_matches": 1.0}])
    assert flag.kind == "canary"
    assert flag.reason == ("1 canary item(s) on the held-out set got their public answers: the code appears to "
                           "hard-code public-set answers")


def test_overfit_gap():
    assert overfit_flag(0.12, 0.10, tolerance=0.05) is None
    flag = overfit_flag(0.40, 0.02, tolerance=0.10)
    assert flag.kind == "overfit"
    assert "exceeds the held-out gain (2.00%) by 38.00%" in flag.reason


def test_near_duplicate_ignores_whitespace_comments_and_offsets():
    copied = (FIX_DIFF.replace("@@ -1,6 +1,6 @@", "@@ -3,6 +3,6 @@")
              .replace("+SKIP_NEGATIVE = False", "+SKIP_NEGATIVE   =   False\n+# my own idea!"))
    assert diff_similarity(FIX_DIFF, copied) == 1.0
    flag = near_duplicate_flag(copied, [("sub-1", FIX_DIFF)], threshold=0.9)
    assert flag.kind == "near_duplicate"
    assert flag.reason == "the diff is 100% similar to earlier submission sub-1 (threshold 90%)"


def test_different_diffs_are_not_duplicates():
    other = FIX_DIFF.replace("+SKIP_NEGATIVE = False", "+SKIP_NEGATIVE = False\n+CACHE = {}\n+LIMIT = 10")
    assert near_duplicate_flag(other, [("sub-1", FIX_DIFF)], threshold=0.9) is None
    assert near_duplicate_flag(FIX_DIFF, [], threshold=0.9) is None
