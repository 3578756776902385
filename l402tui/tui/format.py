"""How numbers, money, times, reason codes and event kinds read in the TUI — in one place.

Plain strings, no Textual.  Every pane, dialog and export goes through here, so a
sat reads the same everywhere and no float prints its binary noise.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any


def sats(msat: int | None) -> str:
    """Whole sats with thousands separators (rounded down: what can actually be paid)."""
    if msat is None:
        return "—"
    return f"{int(msat) // 1000:,}"


def sats_exact(msat: int | None) -> str:
    """Sats with the msat part only when there is one: fees, L402 prices, ledger checks."""
    if msat is None:
        return "—"
    whole, rest = divmod(int(msat), 1000)
    return f"{whole:,}" if rest == 0 else f"{whole:,}.{rest:03d}"


def score(value: float | None, digits: int = 4) -> str:
    """A metric to ``digits`` significant figures, never float noise (0.9679559999999999 -> 0.968)."""
    if value is None:
        return "—"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value == 0:
        return "0"
    if abs(value) >= 1e6 or abs(value) < 1e-4:
        return f"{value:.{max(digits - 1, 1)}e}"
    text = f"{value:.{digits}g}"
    return text if "e" not in text else f"{value:,.0f}"


def percent(fraction: float | None, digits: int = 1) -> str:
    if fraction is None:
        return "—"
    return f"{fraction * 100:.{digits}f} %"


def utc(ts: float | None) -> str:
    if ts is None:
        return "—"
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%d %H:%M")


def iso(ts: float | None) -> str:
    """ISO 8601 UTC to the second, as CSV and copy actions give it."""
    if ts is None:
        return ""
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def clock(ts: float | None) -> str:
    if ts is None:
        return "—"
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%H:%M:%S")


def until(ts: float | None, now: float) -> str:
    """A deadline as people say it: "in 3d 4h", "in 12m", "2h ago"."""
    if ts is None:
        return "—"
    delta = ts - now
    text = span(abs(delta))
    return f"in {text}" if delta >= 0 else f"{text} ago"


def span(seconds: float) -> str:
    s = int(seconds)
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {s}s" if minutes < 10 else f"{minutes}m"
    return f"{s}s"


_span = span  # older name


def bytes_iec(n: int | None) -> str:
    if n is None:
        return "—"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def short_id(value: str | None, width: int = 12) -> str:
    if not value:
        return "—"
    return value if len(value) <= width else value[: width - 1] + "…"


def csv_value(value: Any, field: str = "") -> Any:
    """A raw field as a CSV cell: times as ISO UTC, floats without noise, the rest as is."""
    if value is None:
        return ""
    if isinstance(value, float) and (field.endswith(("_at", "deadline")) or field in ("created_at", "deadline")):
        return iso(value)
    if isinstance(value, float):
        return repr(round(value, 10)) if math.isfinite(value) else str(value)
    return value


# --- reason codes (the agent's view carries codes from a closed list) ----------------
REASON_WORDS = {
    "diff_refused": "diff refused",
    "tests_failed": "required tests failed",
    "time_limit": "ran out of time",
    "memory_limit": "ran out of memory",
    "disk_limit": "ran out of disk",
    "crashed": "the run crashed",
    "output_invalid": "outputs could not be scored",
    "measurement_unavailable": "a metric could not be measured here",
    "no_sandbox": "no sandbox on the coordinator",
    "internal_error": "coordinator error",
    "baseline_unavailable": "no baseline to compare with",
    "below_threshold": "not enough better than the best",
    "stake_lapsed": "stake not paid in time",
    "unstable": "improvement did not hold on re-evaluation",
}
FLAG_WORDS = {"canary": "canary string in output", "overfit": "public/held-out gap (overfit)",
              "near_duplicate": "near-duplicate of an earlier submission",
              "same_outputs": "same outputs as an earlier submission", "knows_heldout": "knows the held-out set"}


def reason_words(code: str) -> str:
    """One reason code as a few plain words; an unknown code is shown as it is."""
    head, sep, param = str(code).partition(":")
    if sep and head == "guard_failed":
        return f"guard metric {param} got worse"
    if sep and head == "flagged":
        return f"flagged: {FLAG_WORDS.get(param, param.replace('_', ' '))}"
    return REASON_WORDS.get(str(code), str(code).replace("_", " "))


def reasons_text(reasons: Any) -> str:
    """Reasons as one line: codes become words, free text stays free text."""
    if reasons is None:
        return ""
    if isinstance(reasons, str):
        items = [r for r in reasons.replace("\n", "; ").split("; ") if r]
    else:
        items = [str(r) for r in reasons]
    return "; ".join(reason_words(r) if _looks_like_code(r) else r for r in items)


def _looks_like_code(text: str) -> bool:
    head = text.partition(":")[0]
    return head in REASON_WORDS or head in ("guard_failed", "flagged")


# --- coordinator events as sentences (the header, the story pane) --------------------
def event_sentence(kind: str, subject: str | None, payload: dict[str, Any] | None) -> str:
    """A coordinator event as a short sentence: "submission s_ab12… was FLAGGED"."""
    payload = payload or {}
    who = subject or payload.get("id") or ""
    status = payload.get("status") or payload.get("to")
    head, _, tail = kind.partition(".")
    noun = {"bounty": "bounty", "submission": "submission", "evaluation": "evaluation", "invoice": "invoice",
            "payment": "payment", "payout": "payout", "holdback": "holdback", "stake": "stake",
            "ledger": "ledger"}.get(head, head)
    name = f"{noun} {short_id(str(who), 16)}" if who else noun
    if tail == "status" and status:
        return f"{name} is now {status}"
    verbs = {"created": "was created", "complete": "completed", "completed": "completed", "failed": "failed",
             "settled": "was settled", "accepted": "was accepted", "canceled": "was cancelled",
             "cancelled": "was cancelled", "queued": "was queued", "started": "started", "finished": "finished",
             "released": "was released", "forfeited": "was forfeited", "paid": "was paid", "opened": "opened",
             "closed": "closed", "funded": "was funded", "flagged": "was flagged", "entry": "was booked"}
    verb = verbs.get(tail, tail.replace("_", " ") if tail else "changed")
    amount = payload.get("amount_msat")
    money = f" ({sats(amount)} sat)" if isinstance(amount, int) else ""
    return f"{name} {verb}{money}"
