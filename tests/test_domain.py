"""The domain's state enums: complete transition tables, and every status the coordinator's
SQL names is one of them (a misspelt state in a query matches no row and fails silently)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from l402tui import domain
from l402tui.domain import (BountyStatus, EvaluationStatus, InvoiceStatus, PaymentStatus, SubmissionStatus,
                            may_move, sql_list)

ROOT = Path(__file__).resolve().parent.parent / "l402tui"
ENUMS = (BountyStatus, SubmissionStatus, InvoiceStatus, PaymentStatus, EvaluationStatus)
TABLES = {BountyStatus: domain.BOUNTY_MOVES, SubmissionStatus: domain.SUBMISSION_MOVES,
          InvoiceStatus: domain.INVOICE_MOVES, EvaluationStatus: domain.EVALUATION_MOVES}
_EQ = re.compile(r"status\s*!?=\s*'([A-Za-z_]+)'")
_IN = re.compile(r"status\s+(?:NOT\s+)?IN\s*\(([^)?]*)\)", re.IGNORECASE)


def _status_literals(text: str) -> set[str]:
    found = set(_EQ.findall(text))
    for group in _IN.findall(text):
        found |= set(re.findall(r"'([A-Za-z_]+)'", group))
    return found


@pytest.mark.parametrize("enum", list(TABLES), ids=lambda e: e.__name__)
def test_every_state_has_its_moves_and_the_ends_have_none(enum):
    table = TABLES[enum]
    assert set(table) == set(enum)
    for frm, targets in table.items():
        assert frm not in targets and all(isinstance(t, enum) for t in targets)
    ends = {s for s, targets in table.items() if not targets}
    reachable = {t for targets in table.values() for t in targets}
    assert ends and ends <= reachable  # every end is reached from somewhere


def test_moves_follow_the_design():
    S, B, I = SubmissionStatus, BountyStatus, InvoiceStatus  # noqa: E741
    assert may_move(S.QUEUED, S.ACCEPTED) and may_move(S.ACCEPTED, S.PAID_PARTIAL)
    assert not may_move(S.REJECTED, S.ACCEPTED) and not may_move(S.PAID_FULL, S.HOLDBACK_FORFEITED)
    assert may_move(B.OPEN, B.CANCELED) and not may_move(B.CLOSED, B.OPEN)
    for final in domain.FINAL_INVOICE:
        assert not any(may_move(final, other) for other in I)
    with pytest.raises(TypeError):
        may_move(S.QUEUED, B.OPEN)
    assert set(domain.PAYABLE) < set(domain.DECIDED) and not set(domain.DECIDED) & set(domain.UNDECIDED)
    assert set(domain.DECIDED) | set(domain.UNDECIDED) == set(S)


def test_values_are_the_stored_strings():
    assert all(member == member.value == member.name for enum in ENUMS for member in enum)
    assert sql_list([SubmissionStatus.ACCEPTED, SubmissionStatus.PAID_FULL]) == "('ACCEPTED', 'PAID_FULL')"


def test_every_status_the_sql_names_is_a_domain_state():
    known = {member.value for enum in ENUMS for member in enum}
    files = sorted((ROOT / "coordinator").glob("*.py")) + [ROOT / "evaluation" / "queue.py"]
    seen: dict[str, set[str]] = {}
    for path in files:
        for literal in _status_literals(path.read_text(encoding="utf-8")):
            seen.setdefault(literal, set()).add(path.name)
    unknown = {k: sorted(v) for k, v in seen.items() if k not in known}
    assert not unknown, f"statuses no domain enum has: {unknown}"
    assert {"ACCEPTED", "COMPLETE", "SETTLED", "RUNNING", "OPEN"} <= set(seen)  # the scan does find them
    assert _status_literals("WHERE status = 'CANCELLED' AND status IN ('OPEN', 'ACEPTED')") == {
        "CANCELLED", "OPEN", "ACEPTED"}
