"""Export a table to CSV (plain Python; the table widgets supply header and rows)."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path
from typing import Any, Sequence

from l402tui.tui.format import csv_value


def export_csv(folder: Path, name: str, header: Sequence[str], rows: Sequence[Sequence[Any]],
               now: float) -> Path:
    """Write ``rows`` under ``folder`` as ``<name>-<UTC time>.csv``; returns the path.

    A second export in the same second gets a numbered name instead of overwriting."""
    folder.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.fromtimestamp(now, dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    path = folder / f"{name}-{stamp}.csv"
    n = 1
    while path.exists():
        n += 1
        path = folder / f"{name}-{stamp}-{n}.csv"
    with path.open("x", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        # Times as ISO UTC, floats without binary noise: what a spreadsheet should read.
        writer.writerows([csv_value(v, str(field)) for v, field in zip(row, header)] for row in rows)
    return path
