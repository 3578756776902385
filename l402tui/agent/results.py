"""``results.tsv``: one row per experiment, in karpathy/autoresearch's columns.

The file is tab separated with the header ``commit	metric	memory_gb	status	description``.
``commit`` is the 7-character short hash of the experiment's commit (kept commits are on
the branch; discarded and crashed candidates stay reachable by hash until git collects
them), ``metric`` has six decimals, ``memory_gb`` one, ``status`` is keep, discard or
crash.  Rows are appended and flushed to disk one at a time, so a kill -9 can only
leave a torn last line, which :meth:`ResultsLog.read` drops and :meth:`repair` removes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

HEADER = ("commit", "metric", "memory_gb", "status", "description")
STATUSES = ("keep", "discard", "crash")


class ResultsFormatError(ValueError):
    """results.tsv has a row this program did not write; the message names the line."""


@dataclass(frozen=True)
class ResultRow:
    commit: str
    metric: float
    memory_gb: float
    status: str
    description: str

    def to_line(self) -> str:
        # Tabs and newlines inside a description would break the columns.
        description = " ".join(self.description.split())
        metric = 0.0 if math.isnan(self.metric) or math.isinf(self.metric) else self.metric
        return f"{self.commit[:7]}\t{metric:.6f}\t{self.memory_gb:.1f}\t{self.status}\t{description}\n"

    @classmethod
    def from_line(cls, line: str, where: str) -> "ResultRow":
        parts = line.rstrip("\n").split("\t")
        if len(parts) != len(HEADER):
            raise ResultsFormatError(f"{where}: expected {len(HEADER)} tab-separated columns, got {len(parts)}")
        commit, metric, memory, status, description = parts
        if status not in STATUSES:
            raise ResultsFormatError(f"{where}: status must be one of {', '.join(STATUSES)}, got {status!r}")
        try:
            return cls(commit, float(metric), float(memory), status, description)
        except ValueError:
            raise ResultsFormatError(f"{where}: metric and memory_gb must be numbers, got "
                                     f"{metric!r} and {memory!r}") from None


class ResultsLog:
    """Append-only access to one results.tsv."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def ensure(self) -> None:
        """Create the file with its header, or repair a torn last line left by a kill."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text("\t".join(HEADER) + "\n", encoding="utf-8")
            return
        self.repair()

    def repair(self) -> bool:
        """Drop a final line without its newline (a write cut short); True if one was dropped."""
        data = self.path.read_bytes()
        if data.endswith(b"\n"):
            return False
        cut = data.rfind(b"\n") + 1
        with open(self.path, "r+b") as fh:
            fh.truncate(cut)
        if cut == 0:
            self.path.write_text("\t".join(HEADER) + "\n", encoding="utf-8")
        return True

    def append(self, row: ResultRow) -> None:
        # One write of one whole line; no fsync: a kill -9 cannot lose what the kernel
        # already has, and a torn line (power loss) is dropped on the next start.
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(row.to_line())

    def read(self) -> list[ResultRow]:
        if not self.path.exists():
            return []
        lines = self.path.read_text(encoding="utf-8").split("\n")
        if not lines or lines[0].split("\t") != list(HEADER):
            raise ResultsFormatError(f"{self.path}:1: header must be {chr(9).join(HEADER)!r}; "
                                     "move the file away to start a fresh log")
        complete = lines[1:-1]  # the text after the last newline is empty or torn
        return [ResultRow.from_line(line, f"{self.path}:{i}") for i, line in enumerate(complete, start=2)]
