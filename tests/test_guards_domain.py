"""The state sets the money rules read, each pinned with the case it exists to exclude."""

from __future__ import annotations

from l402tui import domain
from l402tui.domain import BountyStatus as B  # noqa: N817
from l402tui.domain import InvoiceStatus as I  # noqa: E741
from l402tui.domain import PaymentStatus as P
from l402tui.domain import SubmissionStatus as S


def test_only_accepted_submissions_are_payable_never_flagged_or_rejected():
    assert set(domain.PAYABLE) == {S.ACCEPTED, S.PAID_PARTIAL, S.PAID_FULL, S.HOLDBACK_FORFEITED}
    assert S.FLAGGED not in domain.PAYABLE and S.REJECTED not in domain.PAYABLE


def test_a_payment_in_flight_cannot_be_claimed():
    # A PENDING send may already have reached the node: paying a claim for it too pays twice.
    assert set(domain.CLAIMABLE) == {P.AWAITING_CLAIM, P.QUEUED, P.FAILED}


def test_a_closed_bounty_cannot_be_cancelled():
    # Once CLOSED its submissions are paid and the rest refunded by the close step, not by a cancel.
    assert set(domain.CANCELABLE_BOUNTY) == {B.DRAFT, B.AWAITING_FUNDING, B.OPEN}


def test_an_expired_invoice_is_final():
    assert set(domain.FINAL_INVOICE) == {I.SETTLED, I.CANCELED, I.EXPIRED}
    assert not domain.INVOICE_MOVES[I.EXPIRED]


def test_a_rejected_or_flagged_submission_never_moves_again():
    assert not domain.SUBMISSION_MOVES[S.REJECTED] and not domain.SUBMISSION_MOVES[S.FLAGGED]
