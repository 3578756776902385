"""How numbers, money and times read in the panes (plain strings, no Textual)."""

from __future__ import annotations

import datetime as dt


def sats(msat: int | None) -> str:
    """Whole sats with thousands separators; sub-sat amounts keep their msat."""
    if msat is None:
        return "—"
    whole, rest = divmod(int(msat), 1000)
    return f"{whole:,}" if rest == 0 else f"{msat / 1000:,.3f}"


def score(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.4g}" if abs(value) < 1e5 else f"{value:.3e}"


def utc(ts: float | None) -> str:
    if ts is None:
        return "—"
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%d %H:%M")


def clock(ts: float | None) -> str:
    if ts is None:
        return "—"
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%H:%M:%S")


def until(ts: float | None, now: float) -> str:
    """A deadline as people say it: "in 3d 4h", "in 12m", "2h ago"."""
    if ts is None:
        return "—"
    delta = ts - now
    text = _span(abs(delta))
    return f"in {text}" if delta >= 0 else f"{text} ago"


def _span(seconds: float) -> str:
    s = int(seconds)
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m"
    return f"{s}s"


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
