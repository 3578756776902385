"""Signs that a submission games the evaluation rather than improving the code.

A flagged submission is not paid automatically: it waits for the sponsor's review.

- *Canaries*: items present in both the public and held-out sets with different
  answers.  A held-out run whose outputs match the public answers for them
  (``canary_matches > 0`` in the scorer's metrics) hard-coded public answers.
- *Overfit gap*: the gain on the public set exceeds the gain on the held-out set
  by more than a tolerance (tuned to the public set).
- *Near-duplicates*: a diff that is, once normalised, nearly the same as an
  earlier submission's diff to the same bounty (copying someone's work).
"""

from __future__ import annotations

import difflib
import hashlib
import re
from dataclasses import dataclass
from typing import Iterable

from l402tui.evaluation.diffcheck import parse_diff

CANARY_METRIC = "canary_matches"


@dataclass(frozen=True)
class Flag:
    kind: str  # canary | overfit | near_duplicate
    reason: str

    def to_json(self) -> dict:
        return {"kind": self.kind, "reason": self.reason}


def canary_flag(runs_metrics: Iterable[dict[str, float]]) -> Flag | None:
    """Flag when any held-out repeat reproduced public canary answers."""
    worst = max((m.get(CANARY_METRIC, 0.0) for m in runs_metrics), default=0.0)
    if worst > 0:
        return Flag("canary", f"{int(worst)} canary item(s) on the held-out set got their public answers: "
                              "the code appears to hard-code public-set answers")
    return None


def overfit_flag(public_gain: float, heldout_gain: float, tolerance: float) -> Flag | None:
    """Flag when the public-set gain beats the held-out gain by more than ``tolerance``."""
    gap = public_gain - heldout_gain
    if public_gain > 0 and gap > tolerance:
        return Flag("overfit", f"gain on the public set ({public_gain:.2%}) exceeds the held-out gain "
                               f"({heldout_gain:.2%}) by {gap:.2%}, more than the {tolerance:.2%} allowed: "
                               "likely tuned to the public set")
    return None


_COMMENT = re.compile(r"^\s*(#|//)")


def normalized_changes(diff: str) -> list[str]:
    """The diff's changed lines, whitespace-collapsed, without blank and comment-only
    lines, marked +/-; context and headers are ignored so offsets do not matter."""
    lines: list[str] = []
    for patch in parse_diff(diff):
        for _, text in patch.added:
            if text.strip() and not _COMMENT.match(text):
                lines.append("+" + " ".join(text.split()))
    for raw in diff.splitlines():
        if raw.startswith("-") and not raw.startswith("---"):
            text = raw[1:]
            if text.strip() and not _COMMENT.match(text):
                lines.append("-" + " ".join(text.split()))
    return lines


def diff_similarity(a: str, b: str) -> float:
    la, lb = normalized_changes(a), normalized_changes(b)
    if not la and not lb:
        return 1.0 if a.strip() == b.strip() else 0.0
    if hashlib.sha256("\n".join(la).encode()).digest() == hashlib.sha256("\n".join(lb).encode()).digest():
        return 1.0
    return difflib.SequenceMatcher(None, la, lb, autojunk=False).ratio()


def near_duplicate_flag(diff: str, earlier: Iterable[tuple[str, str]], threshold: float) -> Flag | None:
    """Flag when ``diff`` is at least ``threshold`` similar to an earlier (id, diff)."""
    best_id, best = None, 0.0
    for other_id, other in earlier:
        score = diff_similarity(diff, other)
        if score > best:
            best_id, best = other_id, score
    if best_id is not None and best >= threshold:
        return Flag("near_duplicate", f"the diff is {best:.0%} similar to earlier submission {best_id} "
                                      f"(threshold {threshold:.0%})")
    return None
