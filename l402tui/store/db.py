"""Opening the database and the async access every domain package uses.

One file, WAL mode, foreign keys on, a busy timeout so the coordinator, the sim
network and the TUI can share it.  Domain packages own their SQL; this module owns
connections, transactions and the event log every state change writes to.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import sqlite3
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Iterable

import aiosqlite

from l402tui.store.integrity import HighWater, Mark, lost_writes, newest_event
from l402tui.store.lean_imports import import_sqlite_utils
from l402tui.store.migrations import LATEST, migrate
from l402tui.store.privacy import make_private_file

sqlite_utils = import_sqlite_utils()  # without numpy and pandas (see lean_imports)

log = logging.getLogger("l402tui.store")

BUSY_TIMEOUT_MS = 10_000
# The store whose transaction the current task has open (its reads see its own writes).
_IN_TRANSACTION: contextvars.ContextVar["Store | None"] = contextvars.ContextVar("l402tui_store_txn", default=None)


def now() -> float:
    return time.time()


def _prepare(conn: sqlite3.Connection) -> None:
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA synchronous = NORMAL")


def open_sync(path: Path | str, *, migrate_to: int = LATEST) -> sqlite_utils.Database:
    """Open (creating if needed, 0600 in a 0700 dir) and migrate the database; returns a
    sqlite-utils handle.  Committed writes found lost since the last open are reported
    (a ``store_findings`` row and a warning), never passed over."""
    on_disk = str(path) != ":memory:"
    if on_disk:
        make_private_file(path)  # before SQLite creates it: its -wal and -shm copy its mode
    db = sqlite_utils.Database(str(path), execute_plugins=False)  # no scan of installed plugins
    if on_disk:
        db.execute("PRAGMA journal_mode = WAL")
    _prepare(db.conn)
    migrate(db, migrate_to)
    if on_disk and migrate_to == LATEST:
        _report_lost_writes(db.conn, HighWater(path))
    return db


def _report_lost_writes(conn: sqlite3.Connection, stamp: HighWater) -> None:
    message = lost_writes(conn, stamp)
    if message is None:
        return
    log.warning("%s", message)
    found = now()
    with conn:  # one transaction: the finding and its event
        conn.execute("INSERT INTO store_findings (kind, message, found_at) VALUES ('lost_writes', ?, ?)",
                     (message, found))
        conn.execute("INSERT INTO events (kind, subject_id, payload_json, created_at) VALUES (?, NULL, ?, ?)",
                     ("store.lost_writes", json.dumps({"message": message}), found))
    stamp.reset(newest_event(conn))  # reported once; the finding stays open until acknowledged


class Store:
    """Async access to the database.

    Writes go through :meth:`transaction`, which takes the write lock up front
    (``BEGIN IMMEDIATE``) so read-modify-write sequences cannot interleave with
    another writer.  A single asyncio lock serialises this connection's
    transactions; other processes are kept apart by SQLite itself.

    Reads outside a transaction go through a second connection, so they see only
    committed rows: a task reading (the event stream, a pane, the tick) while another
    task's transaction is open must not see rows that may still be rolled back.  Reads
    by the task that holds the transaction use its connection and see its own writes.
    """

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self._conn: aiosqlite.Connection | None = None
        self._read: aiosqlite.Connection | None = None  # committed rows only
        self._lock = asyncio.Lock()
        self._stamp = HighWater(path) if str(path) != ":memory:" else None
        # Called with each committed Txn, whoever opened it: the coordinator's one wake-up door.
        self.on_commit: list[Callable[["Txn"], None]] = []

    @classmethod
    async def open(cls, path: Path | str) -> "Store":
        open_sync(path).close()  # migrations run synchronously, once
        store = cls(path)
        store._conn = await cls._connect(path)
        if str(path) != ":memory:":  # a second :memory: connection would be another database
            store._read = await cls._connect(path)
            await store._read.execute("PRAGMA query_only = ON")
        return store

    @staticmethod
    async def _connect(path: Path | str) -> aiosqlite.Connection:
        conn = await aiosqlite.connect(str(path), isolation_level=None)
        conn.row_factory = aiosqlite.Row
        await conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        await conn.execute("PRAGMA foreign_keys = ON")
        await conn.execute("PRAGMA synchronous = NORMAL")
        return conn

    async def close(self) -> None:
        for name in ("_read", "_conn"):
            conn = getattr(self, name)
            if conn is not None:
                setattr(self, name, None)
                await conn.close()

    @property
    def conn(self) -> aiosqlite.Connection:
        if self._conn is None:
            raise RuntimeError("store is closed")
        return self._conn

    def _reader(self) -> aiosqlite.Connection:
        if self._read is None or _IN_TRANSACTION.get() is self:
            return self.conn
        return self._read

    # Each read runs to its end in one hop to the connection's thread.  A statement left
    # half-stepped while another task's read runs on the same connection would keep that
    # connection's read snapshot open, and a read started after a commit could then miss it
    # (20 concurrent submits: one could not find the row it had just committed).
    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[dict[str, Any]]:
        return [dict(r) for r in await self._reader().execute_fetchall(sql, tuple(params))]

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> dict[str, Any] | None:
        rows = await self._reader().execute_fetchall(sql, tuple(params))
        return dict(rows[0]) if rows else None

    async def scalar(self, sql: str, params: Iterable[Any] = ()) -> Any:
        rows = await self._reader().execute_fetchall(sql, tuple(params))
        return rows[0][0] if rows else None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator["Txn"]:
        """One write transaction; commits on success, rolls back on any exception."""
        async with self._lock:
            await self.conn.execute("BEGIN IMMEDIATE")
            txn = Txn(self.conn)
            token = _IN_TRANSACTION.set(self)
            try:
                yield txn
            except BaseException:
                await self.conn.execute("ROLLBACK")
                raise
            else:
                await self.conn.execute("COMMIT")
                if txn.events and self._stamp is not None:
                    last = txn.events[-1]
                    self._stamp.advance(Mark(last["id"], last["created_at"]))
            finally:
                _IN_TRANSACTION.reset(token)
            for callback in txn.after_commit:
                callback()
            for listener in self.on_commit:
                listener(txn)


class Txn:
    """Statements inside one open transaction, plus the event log."""

    def __init__(self, conn: aiosqlite.Connection):
        self.conn = conn
        self.after_commit: list[Any] = []
        self.events: list[dict[str, Any]] = []

    async def execute(self, sql: str, params: Iterable[Any] = ()) -> int:
        cur = await self.conn.execute(sql, tuple(params))
        rowcount = cur.rowcount
        lastrowid = cur.lastrowid
        await cur.close()
        return lastrowid if sql.lstrip().upper().startswith("INSERT") else rowcount

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> dict[str, Any] | None:
        async with self.conn.execute(sql, tuple(params)) as cur:
            row = await cur.fetchone()
            return dict(row) if row is not None else None

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[dict[str, Any]]:
        async with self.conn.execute(sql, tuple(params)) as cur:
            return [dict(r) for r in await cur.fetchall()]

    async def insert(self, table: str, row: dict[str, Any], *, or_ignore: bool = False) -> int:
        cols = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        verb = "INSERT OR IGNORE" if or_ignore else "INSERT"
        return await self.execute(f"{verb} INTO {table} ({cols}) VALUES ({marks})", row.values())

    async def event(self, kind: str, subject_id: str | None, **payload: Any) -> int:
        """Record a state change; the SSE stream and the TUI read these rows."""
        created = now()
        event_id = await self.insert(
            "events",
            {
                "kind": kind,
                "subject_id": subject_id,
                "payload_json": json.dumps(payload, sort_keys=True, default=str),
                "created_at": created,
            },
        )
        self.events.append({"id": event_id, "kind": kind, "subject_id": subject_id,
                            "payload": payload, "created_at": created})
        return event_id
