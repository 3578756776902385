"""Rationing held-out evaluations by what an agent cannot mint for free: money.

Every held-out evaluation answers a question about the held-out set, however
little the verdict publishes (``coordinator/disclosure.py``).  Tokens cost a few
sats and are minted at will, so a limit per token limits no one.  What limits
probing is the stake: a bounty's first ``free_evaluations_per_day`` evaluations in
any 24 hours need only the bounty's own ``reward.stake_sats``; each further block
of that many adds ``rationing.stake_sats`` (default 1 % of the pool) to the stake.
A rejected submission's stake is kept in part (``docs/payouts.md``), so k
evaluations past the free ones cost about ``step · k² / (2 · free) · keep``: the
arithmetic is in ``docs/verdicts.md``.  Counted inside the write transaction that
queues the evaluation, so concurrent submits count each other.
"""

from __future__ import annotations

import math
from typing import Any

from l402tui.bounty import BountySpec

WINDOW_S = 24 * 3600


async def evaluations_in_window(db: Any, bounty_id: str, now: float) -> int:
    """Held-out evaluations of submissions queued for ``bounty_id`` in the last 24 hours
    (``db``: the store or a transaction).  A submission counts once it is queued, i.e.
    once its stake (if any) is paid: unpaid submissions cannot push the price up."""
    row = await db.fetchone(
        "SELECT COUNT(*) AS n FROM evaluations WHERE bounty_id = ? AND kind = 'submission' AND created_at >= ?",
        (bounty_id, now - WINDOW_S))
    return int(row["n"])


def step_sats(spec: BountySpec, pool_sats: int) -> int:
    return spec.rationing_stake_sats or max(1, math.ceil(pool_sats / 100))


def required_stake_sats(spec: BountySpec, pool_sats: int, served: int) -> int:
    """The stake the next submission needs after ``served`` evaluations in the window."""
    free = max(1, spec.free_evaluations_per_day)
    if served < free:
        return spec.stake_sats
    return spec.stake_sats + step_sats(spec, pool_sats) * ((served - free) // free + 1)
