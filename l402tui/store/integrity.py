"""Is the database whole?  Checks made before anything trusts it.

- :func:`check_database`: ``PRAGMA quick_check`` and the schema version, before a
  coordinator or the TUI opens it; a corrupt or too-new file is refused with what to do.
- :class:`HighWater`: a stamp beside the database naming the newest ``events`` row any
  process committed (its id and time).  Every state change writes an event, so when the
  stamped event is missing at open (or another row has its id), committed writes were
  lost: a deleted WAL after ``kill -9``, a deleted or replaced database, a restored
  backup.  The store says so instead of starting silently (see ``Store.open``).

The stamp is written after each commit with ``os.pwrite`` (no fsync): it must survive
a killed process, which the page cache does; a power cut can lose both it and the WAL.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from l402tui.store.privacy import FILE_MODE

STAMP_SUFFIX = "-stamp"
_RECORD = 96  # bytes; one fixed-size record, rewritten in place


class DatabaseRefused(Exception):
    """The database cannot be used as it is; the message says why and what to do."""


def check_database(path: Path | str, latest: int | None) -> None:
    """Refuse a corrupt database or one written by a newer l402tui (``latest``: the newest
    schema version understood; None: not checked).  A missing file is fine (it will be created)."""
    path = Path(path)
    if not path.exists() or path.stat().st_size == 0:
        return
    try:
        conn = sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=10)
    except sqlite3.Error as exc:
        raise DatabaseRefused(f"cannot open the database {path}: {exc}") from None
    try:
        try:
            rows = [r[0] for r in conn.execute("PRAGMA quick_check(20)").fetchall()]
            version = conn.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            rows, version = [str(exc)], None
    finally:
        conn.close()
    if rows != ["ok"]:
        shown = "\n  ".join(rows[:8])
        raise DatabaseRefused(
            f"the database {path} is corrupt (SQLite's quick_check says:\n  {shown})\n"
            "nothing was started, so nothing more can be damaged.  Restore a backup made with `l402tui backup DEST` "
            f"(stop l402tui, copy DEST/l402tui.sqlite over {path}, delete {path.name}-wal and {path.name}-shm), "
            "or move the file away to start with an empty coordinator; then run `l402tui wallet ledger --check` "
            "to compare the books with the Lightning node")
    if latest is not None and version is not None and version > latest:
        raise DatabaseRefused(f"the database {path} has schema version {version}, newer than this l402tui "
                              f"understands ({latest}); upgrade l402tui (downgrading would lose data)")


@dataclass(frozen=True)
class Mark:
    event_id: int
    created_at: float


class HighWater:
    """The stamp file ``<db>-stamp`` (0600) of the newest committed event."""

    def __init__(self, db_path: Path | str):
        self.path = Path(str(db_path) + STAMP_SUFFIX)

    def read(self) -> Mark | None:
        try:
            return _parse(self.path.read_bytes())
        except FileNotFoundError:
            return None

    def advance(self, mark: Mark) -> None:
        """Raise the stamp to ``mark`` unless another process already stamped a newer event."""
        self._write(mark, force=False)

    def reset(self, mark: Mark | None) -> None:
        """Set the stamp to what the database holds now (after losses were reported)."""
        if mark is None:
            self.path.unlink(missing_ok=True)
        else:
            self._write(mark, force=True)

    def _write(self, mark: Mark, *, force: bool) -> None:
        record = json.dumps({"event_id": mark.event_id, "created_at": mark.created_at}).encode("ascii")
        record = record.ljust(_RECORD - 1) + b"\n"
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, FILE_MODE)
        except OSError:
            return  # a read-only data dir: the stamp is a safety net, never a reason to fail a commit
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if not force:
                current = _parse(os.pread(fd, _RECORD, 0))
                if current is not None and current.event_id >= mark.event_id:
                    return
            os.pwrite(fd, record, 0)
            os.ftruncate(fd, _RECORD)
        finally:
            os.close(fd)


def _parse(raw: bytes) -> Mark | None:
    """A torn or foreign record makes no claim either way."""
    try:
        data = json.loads(raw.rstrip(b"\0 \n").decode("ascii"))
        return Mark(int(data["event_id"]), float(data["created_at"]))
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return None


def newest_event(conn: sqlite3.Connection) -> Mark | None:
    row = conn.execute("SELECT id, created_at FROM events ORDER BY id DESC LIMIT 1").fetchone()
    return Mark(int(row[0]), float(row[1])) if row else None


def lost_writes(conn: sqlite3.Connection, stamp: HighWater) -> str | None:
    """A sentence saying what was lost, or None when the stamped event is where it was."""
    mark = stamp.read()
    if mark is None:
        return None
    row = conn.execute("SELECT created_at FROM events WHERE id = ?", (mark.event_id,)).fetchone()
    if row is not None and abs(float(row[0]) - mark.created_at) < 1e-6:
        return None
    newest = newest_event(conn)
    have = f"its newest is event {newest.event_id}" if newest else "it holds no events at all"
    return (f"the database has lost committed writes: event {mark.event_id} was committed "
            f"(stamped in {stamp.path.name}) but {have}. A WAL file deleted after a crash, a replaced "
            "database or a restored backup does this; bounties, tokens and invoices written since are gone "
            "from the store. The Lightning node is reconciled at the coordinator's start; "
            "`l402tui wallet ledger --check` lists what it found")
