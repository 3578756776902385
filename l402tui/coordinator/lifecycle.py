"""The guarded state changes of bounties and submissions: one function per rule.

Every writer — the service, the payouts engine, the stability re-evaluation — moves a
row through these, inside the transaction it already holds.  A move happens only from
the states named (so a replay changes nothing), only along the design's tables
(``l402tui/domain.py``; asking for another move is a bug and raises), and always
writes its event, which is what the event stream, the TUI and the log show.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any, Iterable

from l402tui.coordinator.errors import NotFound
from l402tui.domain import BountyStatus, SubmissionStatus, may_move, sql_list

if TYPE_CHECKING:
    from l402tui.coordinator.verdict import Verdict
    from l402tui.store.db import Store, Txn


async def bounty_row(conn: "Store | Txn", bounty_id: str) -> dict[str, Any]:
    row = await conn.fetchone("SELECT * FROM bounties WHERE id = ?", (bounty_id,))
    if row is None:
        raise NotFound(f"no bounty {bounty_id!r}; GET /api/v1/bounties lists them", code="unknown_bounty")
    return row


async def submission_row(conn: "Store | Txn", submission_id: str) -> dict[str, Any]:
    row = await conn.fetchone("SELECT * FROM submissions WHERE id = ?", (submission_id,))
    if row is None:
        raise NotFound(f"no submission {submission_id!r}", code="unknown_submission")
    return row


def _sources(kind: type, frm: str | Iterable[str], to: str) -> tuple[Any, tuple[Any, ...]]:
    target = kind(to)
    sources = tuple(kind(s) for s in ((frm,) if isinstance(frm, str) else frm))
    wrong = [s for s in sources if not may_move(s, target)]
    if wrong:
        raise ValueError(f"{kind.__name__}: no move from {', '.join(wrong)} to {target} in the design's table")
    return target, sources


async def move_bounty(txn: "Txn", bounty_id: str, frm: str | Iterable[str], to: str, /, **payload: Any) -> bool:
    """Move a bounty from one of ``frm`` to ``to``; False (and no change) if it is elsewhere."""
    target, sources = _sources(BountyStatus, frm, to)
    changed = await txn.execute(
        f"UPDATE bounties SET status = ?, updated_at = ? WHERE id = ? AND status IN {sql_list(sources)}",
        (target, time.time(), bounty_id))
    if changed:
        await txn.event("bounty.status", bounty_id, status=target.value, **payload)
    return bool(changed)


async def close_bounty(txn: "Txn", bounty_id: str, reason: str) -> bool:
    """OPEN -> CLOSED: no more submissions, the held-out salts revealed, the deadline timer done.
    The payouts engine then refunds what is left (``payout_close``)."""
    if not await move_bounty(txn, bounty_id, BountyStatus.OPEN, BountyStatus.CLOSED, reason=reason):
        return False
    now = time.time()
    await txn.execute("UPDATE heldout_commitments SET revealed_at = ? WHERE bounty_id = ? AND revealed_at IS NULL",
                      (now, bounty_id))
    await txn.event("bounty.salt_revealed", bounty_id)
    await txn.execute("UPDATE timers SET done_at = ? WHERE kind = 'bounty_deadline' AND subject_id = ? "
                      "AND done_at IS NULL", (now, bounty_id))
    return True


async def move_submission(txn: "Txn", submission_id: str, frm: str | Iterable[str], to: str, /, *,
                          verdict: "Verdict | None" = None, reasons: list[str] | None = None,
                          **payload: Any) -> bool:
    """Move a submission from one of ``frm`` to ``to``, writing its verdict (or only new
    reasons) with it; False (and no change) if it is elsewhere."""
    target, sources = _sources(SubmissionStatus, frm, to)
    extra_sql, extra = "", []
    if verdict is not None:
        extra_sql = ", verdict_json = ?, reasons = ?"
        extra = [json.dumps(verdict.to_json()), json.dumps(verdict.reasons)]
        # The event stream is the operator's: codes and the detail.
        payload["codes"], payload["reasons"] = verdict.codes, verdict.reasons
    elif reasons is not None:
        extra_sql, extra = ", reasons = ?", [json.dumps(reasons)]
    changed = await txn.execute(
        f"UPDATE submissions SET status = ?, updated_at = ?{extra_sql} WHERE id = ? AND status IN {sql_list(sources)}",
        (target, time.time(), *extra, submission_id))
    if changed:
        await txn.event("submission.status", submission_id, status=target.value, **payload)
    return bool(changed)
