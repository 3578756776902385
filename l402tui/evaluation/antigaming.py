"""Signs that a submission games the evaluation rather than improving the code.

A flagged submission is not paid automatically: it waits for the sponsor's review,
which sees each flag's reason and evidence.

- *Canaries*: items present in both the public and held-out sets with different
  answers.  A held-out run whose outputs match the public answers for them
  (``canary_matches > 0`` in the scorer's metrics) hard-coded public answers.
- *Honeypots*: held-out items whose answers no honest model can predict (random
  labels, random byte runs, randomised report fields).  The scorer reports them
  apart (``honeypot_items`` n, ``honeypot_hits`` k, ``honeypot_chance`` p: an upper
  bound on the chance that a model which does not know the answer hits one item,
  whatever it predicts) and leaves them out of the bounty's metrics.  Under that
  null the hits are dominated by Binomial(n, p); more hits than a one-sided test at
  the bounty's ``honeypot_alpha`` allows means the code *knows* the held-out answers
  (a leak replayed): kind ``knows_heldout``.  Repeats are combined with Bonferroni
  (the smallest p-value times the number of repeats), which holds however the
  repeats depend on each other.  What it cannot see: a replay that leaves the
  honeypots out, which needs the attacker to know which items they are.
- *Overfit gap*: the gain on the public set exceeds the gain on the held-out set
  by more than a tolerance (tuned to the public set).
- *Near-duplicates*: a diff whose normalised token stream (:mod:`codenorm`: quotes,
  comments, spacing and the author's own names folded) is nearly an earlier
  submission's to the same bounty (copying someone's work).
- *Same outputs*: held-out outputs byte-identical to an earlier accepted
  submission's; meaningful only where outputs carry the submission's own choices
  (see :func:`outputs_identify_submission`).
"""

from __future__ import annotations

import difflib
import hashlib
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable

from l402tui.evaluation.codenorm import change_tokens

if TYPE_CHECKING:
    from l402tui.bounty.spec import BountySpec

CANARY_METRIC = "canary_matches"
HONEYPOT_ITEMS, HONEYPOT_HITS, HONEYPOT_CHANCE = "honeypot_items", "honeypot_hits", "honeypot_chance"
# The scorer's figures the checks below read: they must be finite numbers (the harness refuses others).
ANTIGAMING_METRICS = (CANARY_METRIC, HONEYPOT_ITEMS, HONEYPOT_HITS, HONEYPOT_CHANCE)
DEFAULT_HONEYPOT_ALPHA = 0.001
EMPTY_OUTPUTS_SHA256 = hashlib.sha256(b"").hexdigest()  # a run whose scored outputs are no files


@dataclass(frozen=True)
class Flag:
    kind: str  # canary | overfit | near_duplicate | knows_heldout | same_outputs
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)  # for the sponsor's review

    def to_json(self) -> dict:
        return {"kind": self.kind, "reason": self.reason, "evidence": dict(self.evidence)}


def canary_flag(runs_metrics: Iterable[dict[str, float]]) -> Flag | None:
    """Flag when any held-out repeat reproduced public canary answers."""
    worst = max((m.get(CANARY_METRIC, 0.0) for m in runs_metrics), default=0.0)
    if worst > 0:
        return Flag("canary", f"{int(worst)} canary item(s) on the held-out set got their public answers: "
                              "the code appears to hard-code public-set answers", {"canary_matches": int(worst)})
    return None


def overfit_flag(public_gain: float, heldout_gain: float, tolerance: float) -> Flag | None:
    """Flag when the public-set gain beats the held-out gain by more than ``tolerance``."""
    gap = public_gain - heldout_gain
    if public_gain > 0 and gap > tolerance:
        return Flag("overfit", f"gain on the public set ({public_gain:.2%}) exceeds the held-out gain "
                               f"({heldout_gain:.2%}) by {gap:.2%}, more than the {tolerance:.2%} allowed: "
                               "likely tuned to the public set",
                    {"public_gain": public_gain, "heldout_gain": heldout_gain, "tolerance": tolerance})
    return None


def binomial_tail(n: int, k: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p), summed in log space (exact for any n here)."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    if p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    lp, lq = math.log(p), math.log1p(-p)
    terms = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * lp + (n - i) * lq
             for i in range(k, n + 1)]
    top = max(terms)
    return min(1.0, math.exp(top) * math.fsum(math.exp(t - top) for t in terms))


def honeypot_flag(runs_metrics: list[dict[str, float]], alpha: float = DEFAULT_HONEYPOT_ALPHA) -> Flag | None:
    """Flag ``knows_heldout`` when the honeypot hits beat chance at level ``alpha``.

    Each repeat is tested one-sided against Binomial(n, chance); the repeats'
    smallest p-value times their number is compared with ``alpha``.  Repeats without
    honeypot metrics (a set with none) are skipped; no such repeat at all: None.
    A scorer that reports hits above items or a chance outside [0, 1] is a broken
    scorer, and is flagged too rather than waved through.
    """
    tested: list[dict[str, float]] = []
    for m in runs_metrics:
        if HONEYPOT_ITEMS not in m or HONEYPOT_HITS not in m:
            continue
        n, k = int(m[HONEYPOT_ITEMS]), int(m[HONEYPOT_HITS])
        chance = float(m.get(HONEYPOT_CHANCE, 0.0))
        if n <= 0:
            continue
        if not (0 <= k <= n) or not (0.0 <= chance <= 1.0) or math.isnan(chance):
            return Flag("knows_heldout", f"the scorer's honeypot figures are impossible (n={n}, k={k}, "
                                         f"chance={chance}); the sponsor must check the scorer",
                        {"n": n, "k": k, "chance": chance})
        tested.append({"n": n, "k": k, "chance": chance, "p_value": binomial_tail(n, k, chance)})
    if not tested:
        return None
    worst = min(tested, key=lambda t: t["p_value"])
    combined = min(1.0, worst["p_value"] * len(tested))
    evidence = {**worst, "repeats": len(tested), "p_value_combined": combined, "alpha": alpha,
                "hits_per_repeat": [t["k"] for t in tested]}
    if combined < alpha:
        return Flag("knows_heldout",
                    f"{worst['k']} of {worst['n']} honeypot items answered right where chance allows "
                    f"{worst['chance'] * worst['n']:.2g} (one-sided binomial p = {combined:.2g} over "
                    f"{len(tested)} repeat(s), below alpha {alpha:g}): the code appears to know the held-out answers",
                    evidence)
    return None


def outputs_identify_submission(spec: "BountySpec") -> bool:
    """Whether identical held-out outputs mean a copy: only when a weighted metric is scored
    from files the run wrote.  Where the weighted metrics are measured (CPU time, say) every
    correct submission writes the same outputs, and in interactive mode they go over a pipe."""
    return spec.run.mode == "batch" and any(m.weight > 0 and m.source == "score" for m in spec.metrics)


def same_outputs_flag(outputs_sha256: str | None, earlier: list[tuple[str, str]]) -> Flag | None:
    """Flag when the held-out outputs are byte-identical to an earlier accepted (id, digest).

    The caller passes only accepted submissions of the same bounty and held-out set, and
    only where :func:`outputs_identify_submission` holds.  No outputs (None, or the digest
    of no files) match nothing."""
    if not outputs_sha256 or outputs_sha256 == EMPTY_OUTPUTS_SHA256:
        return None
    for other_id, digest in earlier:
        if digest == outputs_sha256:
            return Flag("same_outputs", f"the held-out outputs are identical to those of earlier accepted "
                                        f"submission {other_id}",
                        {"earlier_submission": other_id, "outputs_sha256": outputs_sha256})
    return None


def normalized_changes(diff: str) -> list[str]:
    """The diff's changes as one normalised token stream (added, then removed, marked)."""
    added, removed = change_tokens(diff)
    return ["+" + t for t in added] + ["-" + t for t in removed]


def diff_similarity(a: str, b: str) -> float:
    """How alike two diffs' changes are, 0..1: the match ratio of their normalised added
    tokens (removed tokens when neither adds anything).  Removed lines are the original
    code, the same for two edits of the same lines, so they say nothing about copying."""
    added_a, removed_a = change_tokens(a)
    added_b, removed_b = change_tokens(b)
    la, lb = (added_a, added_b) if added_a or added_b else (removed_a, removed_b)
    if not la and not lb:
        return 1.0 if a.strip() == b.strip() else 0.0
    if la == lb:
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
                                      f"(threshold {threshold:.0%})",
                    {"earlier_submission": best_id, "similarity": round(best, 4), "threshold": threshold})
    return None
