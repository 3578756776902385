"""How much an accepted submission earns: the rule, in whole msat, and nothing else.

Payouts *telescope*.  ``I`` is a submission's improvement over the bounty's
**baseline** (the verdict's ``improvement_vs_baseline``); the bounty's *paid level*
``L`` is the highest ``I`` it has paid for so far (0 at first).  Reaching ``I`` is
worth ``G(I) = min(pool, ⌊pool × I / target⌋)`` gross in total, so a new best pays
``G(I) − G(L)`` and the level becomes ``I``.  The fee and the holdback are cut the
same way, from cumulative totals (``⌊G × fee⌋``, ``⌊net × holdback⌋``), so every
amount is a difference of two floors: one improvement cut into any number of steps
earns, to the msat, what it earns in one step, and rounding never accumulates.

Measured against the current best instead, relative gains compound: ten 5 % steps
(40 % in all) would sum to 50 % and pay more than one 40 % step.
"""

from __future__ import annotations

import json
import math
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
    rejected_stake_keep_percent: float = 0.0


def _dec(x: float | int | str) -> Decimal:
    return Decimal(str(x))


def _floor(x: Decimal) -> int:
    return int(x.to_integral_value(rounding=ROUND_FLOOR))


def _check(target: float, fee_percent: float, holdback_percent: float) -> None:
    if target <= 0:
        raise PayoutTermsError(f"the bounty's target improvement is {target}; it must be positive")
    if not 0 <= fee_percent < 100:
        raise PayoutTermsError(f"coordinator.fee_percent is {fee_percent}; use a value in [0, 100)")
    if not 0 <= holdback_percent <= 100:
        raise PayoutTermsError(f"coordinator.holdback_percent is {holdback_percent}; use a value in [0, 100]")


def cumulative_split(*, pool_msat: int, level: float, target: float, fee_percent: float,
                     holdback_percent: float) -> PayoutSplit:
    """Everything a bounty pays, in total, for reaching ``level`` over the baseline."""
    _check(target, fee_percent, holdback_percent)
    if level <= 0 or pool_msat <= 0:
        return PayoutSplit(0, 0, 0, 0)
    gross = min(pool_msat, _floor(_dec(pool_msat) * _dec(level) / _dec(target)))
    fee = _floor(_dec(gross) * _dec(fee_percent) / 100)
    held = _floor(_dec(gross - fee) * _dec(holdback_percent) / 100)
    return PayoutSplit(gross, fee, gross - fee - held, held)


def _direct(gross: int, fee_percent: float, holdback_percent: float) -> PayoutSplit:
    fee = _floor(_dec(gross) * _dec(fee_percent) / 100)
    held = _floor(_dec(gross - fee) * _dec(holdback_percent) / 100)
    return PayoutSplit(gross, fee, gross - fee - held, held)


def step_split(*, pool_msat: int, left_msat: int, level_before: float, level: float, target: float,
               fee_percent: float, holdback_percent: float) -> PayoutSplit:
    """The split for raising a bounty's paid level from ``level_before`` to ``level``
    (improvements over the baseline, fractions: 0.02 is 2 %), capped by what is left."""
    _check(target, fee_percent, holdback_percent)
    if level <= level_before or left_msat <= 0:
        return PayoutSplit(0, 0, 0, 0)
    kw = dict(pool_msat=pool_msat, target=target, fee_percent=fee_percent, holdback_percent=holdback_percent)
    after, before = cumulative_split(level=level, **kw), cumulative_split(level=max(0.0, level_before), **kw)
    step = PayoutSplit(after.gross_msat - before.gross_msat, after.fee_msat - before.fee_msat,
                       after.now_msat - before.now_msat, after.holdback_msat - before.holdback_msat)
    if step.gross_msat > left_msat:
        # Only when the pool's cash is short of the rule (it never is while payouts alone
        # draw on it): pay what is left, split directly.
        return _direct(left_msat, fee_percent, holdback_percent)
    return step


def split_payout(*, pool_msat: int, left_msat: int, improvement: float, target: float,
                 fee_percent: float, holdback_percent: float) -> PayoutSplit:
    """The split of a first improvement (from level 0); see :func:`step_split`."""
    return step_split(pool_msat=pool_msat, left_msat=left_msat, level_before=0.0, level=improvement,
                      target=target, fee_percent=fee_percent, holdback_percent=holdback_percent)


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
    # A bounty whose published terms do not name the keep share was staked under the old
    # rule (refunded unless gaming is confirmed): keep nothing of it.
    keep = summary.get("rejected_stake_keep_percent")
    keep = 0.0 if keep is None else float(keep)
    if not 0 <= keep <= 100:  # also refuses NaN
        raise PayoutTermsError(f"bounty {bounty['id']}: rejected_stake_keep_percent is {keep}; it must be in "
                               "[0, 100]")
    return BountyTerms(
        pool_msat=int(bounty["pool_msat"]),
        target_improvement=float(target),
        holdback_s=float(summary["holdback_s"]) if summary.get("holdback_s") is not None else None,
        stake_sats=int(summary.get("stake_sats") or 0),
        heldout_sets=int(summary.get("heldout_sets") or 1),
        rejected_stake_keep_percent=keep,
    )


def _verdict(submission: dict[str, Any]) -> dict[str, Any]:
    try:
        verdict = json.loads(submission["verdict_json"] or "{}")
    except json.JSONDecodeError as exc:
        raise PayoutTermsError(f"submission {submission['id']}: verdict_json is not JSON ({exc})") from None
    return verdict if isinstance(verdict, dict) else {}


def _number(submission: dict[str, Any], verdict: dict[str, Any], key: str) -> float:
    value = verdict.get(key)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise PayoutTermsError(f"submission {submission['id']}: the verdict carries no numeric '{key}' "
                               f"(got {value!r}); the judge must record it before payouts can pay")
    return float(value)


def verdict_improvement(submission: dict[str, Any]) -> float:
    """The accepted improvement over the best before it, from the submission's verdict."""
    return _number(submission, _verdict(submission), "improvement")


def verdict_level(submission: dict[str, Any]) -> float:
    """The submission's improvement over the bounty's baseline: the level it is paid up to."""
    verdict = _verdict(submission)
    _number(submission, verdict, "improvement")  # the same message as before for a verdict missing both
    return _number(submission, verdict, "improvement_vs_baseline")
