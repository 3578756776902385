"""Filtering and sorting a table's records (plain Python, no Textual).

A filter is words typed after `/`: a row matches when every word appears, in any
column, ignoring case (so `flag logp` finds the flagged logparse submissions).  The
text searched is built once per reload from the records' raw fields, so typing
into the filter of a 10,000-row table costs one pass of substring tests.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence


def haystack(record: Any, names: Sequence[str]) -> str:
    return "\x00".join("" if (v := getattr(record, n)) is None else str(v) for n in names).lower()


def build_index(records: Sequence[Any]) -> list[str]:
    if not records:
        return []
    first = records[0]
    names = [f.name for f in dataclasses.fields(first)] if dataclasses.is_dataclass(first) else list(vars(first))
    return [haystack(r, names) for r in records]


def matching(records: Sequence[Any], index: Sequence[str], text: str, status: str | None = None) -> list[Any]:
    """The records whose text holds every word of ``text`` (and whose status is ``status``)."""
    words = text.lower().split()
    out = []
    for record, hay in zip(records, index):
        if status is not None and getattr(record, "status", None) != status:
            continue
        if all(w in hay for w in words):
            out.append(record)
    return out


def sort_records(records: list[Any], key: Callable[[Any], Any], reverse: bool) -> list[Any]:
    """Sorted by ``key``; rows without a value (None) go last whichever the direction."""
    present = [r for r in records if key(r) is not None]
    missing = [r for r in records if key(r) is None]
    try:
        present.sort(key=key, reverse=reverse)
    except TypeError:  # mixed types in one column: compare as text
        present.sort(key=lambda r: str(key(r)), reverse=reverse)
    return present + missing
