"""The states of bounties, submissions, invoices, payments and evaluations: one StrEnum each.

A member is the very string stored in SQLite and sent over HTTP
(``SubmissionStatus.ACCEPTED == "ACCEPTED"``), so rows, JSON and SQL parameters need no
conversion.  Where the design's transitions are a plain table it is here too
(:func:`may_move`); a guard that needs more than the two states (a cancel "only before any
payout") stays with the transition that checks it.  Standard library only: any layer may
import this module.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Iterable


class BountyStatus(StrEnum):
    DRAFT = "DRAFT"
    AWAITING_FUNDING = "AWAITING_FUNDING"
    OPEN = "OPEN"
    CLOSED = "CLOSED"
    SETTLED = "SETTLED"
    CANCELED = "CANCELED"


B = BountyStatus
BOUNTY_MOVES: dict[BountyStatus, frozenset[BountyStatus]] = {
    B.DRAFT: frozenset({B.AWAITING_FUNDING, B.OPEN, B.CANCELED}),  # straight to OPEN when self-funded
    B.AWAITING_FUNDING: frozenset({B.OPEN, B.CANCELED}),
    B.OPEN: frozenset({B.CLOSED, B.CANCELED}),  # CANCELED only while nothing was paid out
    B.CLOSED: frozenset({B.SETTLED}),
    B.SETTLED: frozenset(),
    B.CANCELED: frozenset(),
}
CANCELABLE_BOUNTY = (B.DRAFT, B.AWAITING_FUNDING, B.OPEN)
ENDED_BOUNTY = (B.CLOSED, B.SETTLED, B.CANCELED)  # takes no submissions and sells nothing new
LISTED_BOUNTY = (B.OPEN, B.CLOSED, B.SETTLED)  # what agents see in the bounty list


class SubmissionStatus(StrEnum):
    RECEIVED = "RECEIVED"
    AWAITING_STAKE = "AWAITING_STAKE"
    QUEUED = "QUEUED"
    EVALUATING = "EVALUATING"
    ACCEPTED = "ACCEPTED"
    REJECTED = "REJECTED"
    FLAGGED = "FLAGGED"
    PAID_PARTIAL = "PAID_PARTIAL"
    PAID_FULL = "PAID_FULL"
    HOLDBACK_FORFEITED = "HOLDBACK_FORFEITED"


S = SubmissionStatus
# Accepted, whatever its payout has reached since.
PAYABLE = (S.ACCEPTED, S.PAID_PARTIAL, S.PAID_FULL, S.HOLDBACK_FORFEITED)
# Has its verdict.
DECIDED = (S.ACCEPTED, S.REJECTED, S.FLAGGED, S.PAID_PARTIAL, S.PAID_FULL, S.HOLDBACK_FORFEITED)
# Not yet decided: a cancelled bounty rejects these.
UNDECIDED = (S.RECEIVED, S.AWAITING_STAKE, S.QUEUED, S.EVALUATING)
VERDICTS = (S.ACCEPTED, S.REJECTED, S.FLAGGED)
SUBMISSION_MOVES: dict[SubmissionStatus, frozenset[SubmissionStatus]] = {
    S.RECEIVED: frozenset({S.AWAITING_STAKE, S.QUEUED, S.REJECTED}),
    S.AWAITING_STAKE: frozenset({S.QUEUED, S.REJECTED}),  # REJECTED: the stake lapsed, or the bounty ended
    # A verdict may land while the row still says QUEUED (the queue's RUNNING is seen late).
    S.QUEUED: frozenset({S.EVALUATING, *VERDICTS}),
    S.EVALUATING: frozenset(VERDICTS),
    S.ACCEPTED: frozenset({S.PAID_PARTIAL, S.PAID_FULL, S.HOLDBACK_FORFEITED}),
    S.PAID_PARTIAL: frozenset({S.PAID_FULL, S.HOLDBACK_FORFEITED}),
    S.REJECTED: frozenset(),
    S.FLAGGED: frozenset(),
    S.PAID_FULL: frozenset(),
    S.HOLDBACK_FORFEITED: frozenset(),
}


class InvoiceStatus(StrEnum):
    """An invoice the coordinator issued, as the store records it (the node's view is
    :class:`l402tui.lightning.backend.InvoiceState`, with the same values)."""

    OPEN = "OPEN"
    ACCEPTED = "ACCEPTED"  # a hold invoice's HTLC is held
    SETTLED = "SETTLED"
    CANCELED = "CANCELED"
    EXPIRED = "EXPIRED"


I = InvoiceStatus  # noqa: E741 - mirrors B and S
FINAL_INVOICE = (I.SETTLED, I.CANCELED, I.EXPIRED)
WAITING_INVOICE = (I.OPEN, I.ACCEPTED)  # the node may still change it
INVOICE_MOVES: dict[InvoiceStatus, frozenset[InvoiceStatus]] = {
    I.OPEN: frozenset({I.ACCEPTED, I.SETTLED, I.CANCELED, I.EXPIRED}),
    I.ACCEPTED: frozenset({I.SETTLED, I.CANCELED, I.EXPIRED}),
    I.SETTLED: frozenset(),
    I.CANCELED: frozenset(),
    I.EXPIRED: frozenset(),
}


class PaymentStatus(StrEnum):
    """An outgoing payment row (coordinator/payout_sender.py says what each allows)."""

    AWAITING_CLAIM = "AWAITING_CLAIM"
    QUEUED = "QUEUED"
    PENDING = "PENDING"
    FAILED = "FAILED"
    COMPLETE = "COMPLETE"
    UNKNOWN = "UNKNOWN"


P = PaymentStatus
SENDABLE = (P.QUEUED, P.FAILED)  # may be sent now; PENDING and COMPLETE never are
CLAIMABLE = (P.AWAITING_CLAIM, P.QUEUED, P.FAILED)  # a payee's invoice may still settle it


class EvaluationStatus(StrEnum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    DONE = "DONE"
    FAILED = "FAILED"


E = EvaluationStatus
EVALUATION_MOVES: dict[EvaluationStatus, frozenset[EvaluationStatus]] = {
    E.QUEUED: frozenset({E.RUNNING, E.FAILED}),
    E.RUNNING: frozenset({E.DONE, E.FAILED, E.QUEUED}),  # QUEUED again after a crash, up to a limit
    E.DONE: frozenset(),
    E.FAILED: frozenset(),
}

_MOVES: dict[type, dict] = {BountyStatus: BOUNTY_MOVES, SubmissionStatus: SUBMISSION_MOVES,
                            InvoiceStatus: INVOICE_MOVES, EvaluationStatus: EVALUATION_MOVES}


def may_move(frm: StrEnum, to: StrEnum) -> bool:
    """Whether the design lets a row go from ``frm`` to ``to`` (both of one enum)."""
    if type(frm) is not type(to) or type(frm) not in _MOVES:
        raise TypeError(f"no transition table from {frm!r} to {to!r}")
    return to in _MOVES[type(frm)][frm]


def sql_list(states: Iterable[StrEnum]) -> str:
    """``('A', 'B')`` for ``status IN ...`` (the values are these enums' own, never input)."""
    return "(" + ", ".join(f"'{s.value}'" for s in states) + ")"
