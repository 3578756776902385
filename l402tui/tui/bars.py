"""Text bars and sparklines from eighth blocks, as nvitop draws them."""

from __future__ import annotations

from typing import Iterable, Sequence

EIGHTHS = " ▏▎▍▌▋▊▉"
SPARKS = "▁▂▃▄▅▆▇█"


def bar(fraction: float | None, width: int) -> str:
    """A left-to-right bar ``width`` cells wide, with 1/8-cell resolution."""
    if width <= 0:
        return ""
    if fraction is None:
        return "·" * width
    fraction = min(1.0, max(0.0, fraction))
    eighths = round(fraction * width * 8)
    full, part = divmod(eighths, 8)
    text = "█" * full
    if part and full < width:
        text += EIGHTHS[part]
    return text.ljust(width)


def sparkline(values: Sequence[float | None] | Iterable[float | None], width: int,
              low: float | None = None, high: float | None = None) -> str:
    """The last ``width`` values as a one-line sparkline; gaps (None) are blank.

    ``low``/``high`` fix the scale (0–100 for percentages); otherwise it follows the data."""
    data = list(values)[-width:] if width > 0 else []
    known = [v for v in data if v is not None]
    if not known:
        return " " * max(width, 0)
    lo = min(known) if low is None else low
    hi = max(known) if high is None else high
    span = hi - lo
    out = []
    for v in data:
        if v is None:
            out.append(" ")
        elif span <= 0:
            out.append(SPARKS[len(SPARKS) // 2])
        else:
            index = int((min(max(v, lo), hi) - lo) / span * (len(SPARKS) - 1) + 0.5)
            out.append(SPARKS[index])
    return "".join(out).rjust(width)
