"""How much an accepted submission earns: the rule, in whole msat, and nothing else.

``payout = pool × improvement / target``, capped by what is left of the pool, minus
the coordinator fee; of the rest 80 % is paid at once and 20 % held back.  Decimal
arithmetic, rounded down once per step, so the same inputs give the same msat on
every machine and the rounding always favours keeping money in the pool.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal
from typing import Any


class PayoutTermsError(ValueError):
    """A bounty or verdict lacks what the payout rule needs; the message says what."""


@dataclass(frozen=True)
class PayoutSplit:
    gross_msat: int  # taken from the pool
    fee_msat: int  # to the coordinator
    now_msat: int  # paid at once
    holdback_msat: int  # reserved until the stability re-evaluation

    @property
    def net_msat(self) -> int:
        return self.now_msat + self.holdback_msat


@dataclass(frozen=True)
class BountyTerms:
    pool_msat: int
    target_improvement: float
    holdback_s: float | None  # None: the coordinator's default
    stake_sats: int
    heldout_sets: int


def _dec(x: float | int | str) -> Decimal:
    return Decimal(str(x))


def _floor(x: Decimal) -> int:
    return int(x.to_integral_value(rounding=ROUND_FLOOR))


def split_payout(*, pool_msat: int, left_msat: int, improvement: float, target: float,
                 fee_percent: float, holdback_percent: float) -> PayoutSplit:
    """The split for one accepted improvement (fractions: 0.02 is 2 %)."""
    if target <= 0:
        raise PayoutTermsError(f"the bounty's target improvement is {target}; it must be positive")
    if not 0 <= fee_percent < 100:
        raise PayoutTermsError(f"coordinator.fee_percent is {fee_percent}; use a value in [0, 100)")
    if not 0 <= holdback_percent <= 100:
        raise PayoutTermsError(f"coordinator.holdback_percent is {holdback_percent}; use a value in [0, 100]")
    if improvement <= 0 or left_msat <= 0:
        return PayoutSplit(0, 0, 0, 0)
    gross = min(_floor(_dec(pool_msat) * _dec(improvement) / _dec(target)), left_msat)
    fee = _floor(_dec(gross) * _dec(fee_percent) / 100)
    net = gross - fee
    held = _floor(_dec(net) * _dec(holdback_percent) / 100)
    return PayoutSplit(gross, fee, net - held, held)


def bounty_terms(bounty: dict[str, Any]) -> BountyTerms:
    """Read the terms from a ``bounties`` row (``spec_json`` is the coordinator's spec summary)."""
    try:
        summary = json.loads(bounty["spec_json"] or "{}")
    except json.JSONDecodeError as exc:
        raise PayoutTermsError(f"bounty {bounty['id']}: spec_json is not JSON ({exc})") from None
    target = (summary.get("target") or {}).get("improvement")
    if target is None:
        raise PayoutTermsError(f"bounty {bounty['id']}: spec_json has no target.improvement, so no payout can "
                               "be computed; recreate the bounty with this l402tui")
    return BountyTerms(
        pool_msat=int(bounty["pool_msat"]),
        target_improvement=float(target),
        holdback_s=float(summary["holdback_s"]) if summary.get("holdback_s") is not None else None,
        stake_sats=int(summary.get("stake_sats") or 0),
        heldout_sets=int(summary.get("heldout_sets") or 1),
    )


def verdict_improvement(submission: dict[str, Any]) -> float:
    """The accepted improvement over the current best, from the submission's verdict."""
    try:
        verdict = json.loads(submission["verdict_json"] or "{}")
    except json.JSONDecodeError as exc:
        raise PayoutTermsError(f"submission {submission['id']}: verdict_json is not JSON ({exc})") from None
    improvement = verdict.get("improvement")
    if not isinstance(improvement, (int, float)) or isinstance(improvement, bool):
        raise PayoutTermsError(f"submission {submission['id']}: the verdict carries no numeric 'improvement' "
                               f"(got {improvement!r}); the judge must record it before payouts can pay")
    return float(improvement)
