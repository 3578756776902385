"""A bounty's *paid level*: the highest improvement over the baseline it has paid for.

Each ``payout.allocated`` event records the level before (``level_before``) and after
(``paid_level``) its step; the level of a bounty is the highest ``paid_level`` of its
allocations.  A forfeited holdback does not lower it: that range of improvement was
paid for (80 % of it) once, and paying it again to the next submission would let a
pair of agents sell the same gain twice.  The forfeited 20 % returns to the pool and
so to the sponsor at the close.
"""

from __future__ import annotations

import json
from typing import Any

from l402tui.store.db import Store, Txn

# Events written before payouts telescoped carry no level: the submission's verdict says it.
_LEVEL = ("COALESCE(json_extract(e.payload_json, '$.paid_level'), "
          "json_extract(s.verdict_json, '$.improvement_vs_baseline'), json_extract(e.payload_json, '$.improvement'))")


async def paid_level(conn: Store | Txn, bounty_id: str) -> float:
    """The highest improvement over the baseline this bounty has allocated a payout for (0 if none)."""
    row = await conn.fetchone(f"SELECT MAX({_LEVEL}) AS v FROM events e JOIN submissions s ON s.id = e.subject_id "
                              "WHERE e.kind = 'payout.allocated' AND s.bounty_id = ?", (bounty_id,))
    value = row["v"] if row else None
    return max(0.0, float(value)) if value is not None else 0.0


async def allocation(conn: Store | Txn, submission_id: str) -> dict[str, Any] | None:
    """The payload of the submission's ``payout.allocated`` event, or None before it is allocated."""
    row = await conn.fetchone("SELECT payload_json FROM events WHERE kind = 'payout.allocated' AND subject_id = ? "
                              "ORDER BY id LIMIT 1", (submission_id,))
    return json.loads(row["payload_json"] or "{}") if row is not None else None


def paid_range(payload: dict[str, Any] | None, fallback: float) -> float:
    """The improvement (over the baseline) a submission was paid for: its step of the level."""
    if payload and isinstance(payload.get("paid_level"), (int, float)) and isinstance(
            payload.get("level_before"), (int, float)):
        return max(0.0, float(payload["paid_level"]) - float(payload["level_before"]))
    return fallback
