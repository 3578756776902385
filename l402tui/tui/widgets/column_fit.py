"""How a record table's columns share the width it has (pure, so it is tested alone).

In order: every column at its natural width (capped) when that fits; short of room, the
shrinkable columns give way (rightmost first: ids and references before the detail a
reader came for), then the droppable ones are hidden (lowest ``drop`` first: what the
detail view or the CSV still has), then the shrinkable ones go below their floors (so a
table never scrolls sideways while it has columns to give); with room to spare, capped
columns (long reasons) grow back toward their full width.
"""

from __future__ import annotations

from typing import Protocol, Sequence

GAP = 2
MIN_CELL = 6  # narrower, a shrunk cell is an ellipsis and a stub


class Fittable(Protocol):
    shrink: int | None
    drop: int | None


def table_width(widths: Sequence[int]) -> int:
    """Cells plus the gaps between the shown ones (no trailing gap: it would waste a column)."""
    shown = [w for w in widths if w > 0]
    return sum(shown) + GAP * max(len(shown) - 1, 0)


def fit_widths(columns: Sequence[Fittable], natural: Sequence[int], full: Sequence[int], room: int) -> list[int]:
    """Widths per column for ``room`` cells; 0 hides a column."""
    widths = list(natural)
    if room <= 0:
        return widths
    excess = table_width(widths) - room
    for i in reversed(range(len(columns))):
        if excess <= 0:
            break
        floor = columns[i].shrink
        if floor is not None and widths[i] > floor:
            cut = min(widths[i] - floor, excess)
            widths[i] -= cut
            excess -= cut
    droppable = sorted((c.drop, i) for i, c in enumerate(columns) if c.drop is not None)
    for _, i in droppable:
        if table_width(widths) <= room:
            break
        widths[i] = 0
    # Still too wide (the ledger at 80 columns with a HOLDBACK_FORFEITED): the shrinkable columns
    # give up their floors too rather than the table scrolling sideways; one left too narrow to
    # say anything is hidden.
    for i in reversed(range(len(columns))):
        excess = table_width(widths) - room
        if excess <= 0:
            break
        if columns[i].shrink is not None and widths[i] > 0:
            widths[i] = max(widths[i] - excess, 0)
            if widths[i] < MIN_CELL:
                widths[i] = 0
    spare = room - table_width(widths)
    for i in range(len(columns)):
        if spare <= 0:
            break
        if 0 < widths[i] < full[i]:
            grow = min(full[i] - widths[i], spare)
            widths[i] += grow
            spare -= grow
    return widths
