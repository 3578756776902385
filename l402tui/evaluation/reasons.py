"""The closed vocabulary of why an evaluation or a verdict came out as it did.

Every run is a possible exfiltration of the held-out set: a file name, an exit
code, a line of stderr or an exception message is a string the agent's code
chose.  So what goes back to an agent about an evaluation is a code from this
list and nothing else; the free-text detail stays in the operator's and the
sponsor's views.  Two codes carry a parameter, and the parameter comes from the
sponsor's bounty.toml or the coordinator, never from the run:
``guard_failed:<metric>`` and ``flagged:<kind>``.
"""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    # The diff and the evaluation
    DIFF_REFUSED = "diff_refused"  # the diff broke a rule before anything ran
    TESTS_FAILED = "tests_failed"  # the bounty's required tests did not pass
    TIME_LIMIT = "time_limit"
    MEMORY_LIMIT = "memory_limit"
    DISK_LIMIT = "disk_limit"
    CRASHED = "crashed"  # any other non-zero exit or signal
    OUTPUT_INVALID = "output_invalid"  # outputs the trusted scorer could not score
    MEASUREMENT_UNAVAILABLE = "measurement_unavailable"  # the sandbox cannot measure a harness metric
    NO_SANDBOX = "no_sandbox"  # the coordinator could not run it (its problem, not the diff's)
    INTERNAL_ERROR = "internal_error"
    # The verdict
    BASELINE_UNAVAILABLE = "baseline_unavailable"
    BELOW_THRESHOLD = "below_threshold"  # did not beat the current best by the margin
    STAKE_LAPSED = "stake_lapsed"  # the stake invoice expired or was cancelled unpaid
    BOUNTY_CANCELLED = "bounty_cancelled"  # the bounty was cancelled before a verdict (stake refunded)
    UNSTABLE = "unstable"  # the holdback re-evaluation did not hold the improvement


GUARD_FAILED = "guard_failed"
FLAGGED = "flagged"
# Flag kinds the anti-gaming checks can raise (``flagged:<kind>``).
FLAG_KINDS = frozenset({"canary", "overfit", "near_duplicate", "same_outputs", "knows_heldout"})


def guard_failed(metric: str) -> str:
    return f"{GUARD_FAILED}:{metric}"


def flagged(kind: str) -> str:
    if kind not in FLAG_KINDS:
        raise ValueError(f"unknown flag kind {kind!r}")
    return f"{FLAGGED}:{kind}"


def is_code(value: object, metrics: frozenset[str] | set[str] = frozenset()) -> bool:
    """True when ``value`` is a code of the vocabulary (``metrics``: the bounty's metric names,
    the only parameters a ``guard_failed`` code may carry)."""
    if not isinstance(value, str):
        return False
    if value in Reason._value2member_map_:
        return True
    head, sep, param = value.partition(":")
    if not sep:
        return False
    if head == GUARD_FAILED:
        return param in metrics
    return head == FLAGGED and param in FLAG_KINDS


class PhaseFailed(Exception):
    """One repeat could not produce metrics: ``code`` for the agent, the message for the operator
    (it may quote what the run controlled, so it never leaves the operator's views)."""

    def __init__(self, code: Reason, detail: str):
        super().__init__(detail)
        self.code = code
