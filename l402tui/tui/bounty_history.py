"""A bounty's history as chart series (plain data, no Textual): held-out scores of its
submissions in the order they came, the best so far (it moves only on an accepted
submission: accepted improvements stack), and the pool left after each payment."""

from __future__ import annotations

from dataclasses import dataclass

from l402tui.tui.source import BountyRow, LedgerRow, SubmissionRow

KEPT = ("ACCEPTED", "PAID_PARTIAL", "PAID_FULL", "HOLDBACK_FORFEITED")
DRAINS = ("payout", "holdback", "refund")  # what leaves the pool (payments to agents and the sponsor)
PAYMENT_STATES = ("PENDING", "COMPLETE", "UNKNOWN")  # payments, not the ledger's reservation rows


@dataclass(frozen=True)
class ScoreHistory:
    scores: list[float | None]  # held-out score per submission, oldest first (None: not scored yet)
    best: list[float | None]  # the bounty's best after each submission
    kept: list[tuple[int, float]]  # (index, score) of accepted submissions
    ids: list[str]


def score_history(bounty: BountyRow, submissions: list[SubmissionRow]) -> ScoreHistory:
    mine = sorted((s for s in submissions if s.bounty_id == bounty.id), key=lambda s: (s.created_at, s.id))
    best = bounty.baseline
    scores, bests, kept = [], [], []
    for i, s in enumerate(mine):
        scores.append(s.heldout_score)
        if s.status in KEPT and s.heldout_score is not None:
            best = s.heldout_score
            kept.append((i, s.heldout_score))
        bests.append(best)
    return ScoreHistory(scores, bests, kept, [s.id for s in mine])


@dataclass(frozen=True)
class PoolStep:
    at: float
    left_msat: int
    kind: str  # what moved: payout, holdback, refund, or "now"
    amount_msat: int
    submission_id: str | None


def pool_history(bounty: BountyRow, ledger: list[LedgerRow]) -> list[PoolStep]:
    """Pool left after each payment out of it, oldest first, ending at the coordinator's own
    figure for now (``bounty.pool_left_msat``: the payout rule's, which also leaves out fees
    and reservations the payments alone do not show)."""
    left = bounty.pool_msat
    steps = [PoolStep(0.0, left, "funded", bounty.pool_msat, None)]
    moves = sorted((r for r in ledger if r.bounty_id == bounty.id and r.kind in DRAINS
                    and r.status in PAYMENT_STATES),
                   key=lambda r: r.created_at)
    for r in moves:
        left = max(0, left - r.amount_msat)
        steps.append(PoolStep(r.created_at, left, r.kind, r.amount_msat, r.submission_id))
    if steps[-1].left_msat != bounty.pool_left_msat:
        steps.append(PoolStep(steps[-1].at, bounty.pool_left_msat, "now", 0, None))
    return steps
