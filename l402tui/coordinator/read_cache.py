"""Serialized public answers (bounty list, one bounty, node status), kept until the
store changes or the clock passes a moment that changes them.

A hot ``GET /api/v1/bounties`` would otherwise cost a dozen queries on the store's
reader thread per request (each bounty's commitments and pool left through the
ledger).  Here it is one ``PRAGMA data_version`` and a dict lookup.

**When an entry is stale.**  ``PRAGMA data_version`` read on a private connection moves
with every commit by any other connection: this process's store, an evaluation worker
in another process, ``l402tui bounty`` run by hand.  An entry remembers the version it
was built under and is rebuilt when it moved.  The version is read *before* building,
so a commit that lands while building only makes the next request rebuild.  Besides
the store, the clock: an entry also carries the time it expires, which a builder sets
to the next moment its answer changes without a write (a verdict's reveal time, see
:func:`next_reveal`; a TTL for the node's status).

Nothing per-agent is kept here (submission views, a claim): only what anyone may read.
With an in-memory store (no file another connection can watch) nothing is cached.

**What a miss must not tell.**  A miss is slower than a hit (the queries run), so if
commits invalidated entries, a client timing its reads would learn *when* a commit
happened: an evaluation finishing is one, and its moment is what a run that sleeps to
signal wants known (``disclosure.py``'s time classes hide it).  So no entry outlives the
wall-clock second it was built in (``EPOCH_S``), commits or not: the first read of every
second is a miss and the rest are hits, whatever the store does.  The change mark then
only keeps a build from being shared across a commit; public answers lag a write by at
most a second.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Hashable

if TYPE_CHECKING:
    from l402tui.coordinator.service import Coordinator

log = logging.getLogger(__name__)

FOREVER = math.inf
MAX_ENTRIES = 4096  # keys are route + an existing bounty's id; more only with thousands of bounties
# Node status (block height, alias) is asked of the Lightning backend at most this often.
STATUS_TTL_S = 1.0
# Every entry expires at the next whole multiple of this on the wall clock (see above).
EPOCH_S = 1.0
_MAX_CHAIN = 10_000  # a best's "prior" chain is one link per accepted improvement


class ChangeMarks:
    """``PRAGMA data_version`` on a connection of its own (it never writes, so every
    commit it can see is someone else's).  ~2 µs, read on the event loop's thread:
    in WAL mode it reads the shared-memory index, no file I/O.  None when it cannot
    tell (no file, a locked index): the caller then must not trust any entry."""

    def __init__(self, db_path: Path | str | None):
        self._conn: sqlite3.Connection | None = None
        if db_path is None or str(db_path) == ":memory:":
            return
        try:
            # mode=rw: never create a database (it would not be private); timeout 0: never
            # wait on the event loop's thread for a lock (busy reads as "cannot tell").
            conn = sqlite3.connect(Path(db_path).resolve().as_uri() + "?mode=rw", uri=True, isolation_level=None,
                                   check_same_thread=False, timeout=0)
            conn.execute("PRAGMA query_only = ON")
            self._conn = conn
        except sqlite3.Error as exc:
            log.warning("read cache off: cannot watch %s for changes (%s)", db_path, exc)

    def read(self) -> int | None:
        if self._conn is None:
            return None
        try:
            # fetchall: the statement runs to its end, so no read transaction stays open
            # (an open one would hold back checkpoints and let the WAL grow).
            return int(self._conn.execute("PRAGMA data_version").fetchall()[0][0])
        except sqlite3.Error:
            return None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


@dataclass(frozen=True)
class Entry:
    mark: int
    expires_at: float  # wall clock (time.time()), FOREVER when only a write changes it
    body: bytes


# What a builder returns: the answer's bytes and when it expires (wall clock).
Built = tuple[bytes, float]


class ReadCache:
    """Answers by key, valid while the store's change mark is the same and the clock is
    before their expiry.  Concurrent misses for one key share one build.

    The mark is read once per turn of the event loop: requests whose handlers run in
    the same turn arrived together (one ``select``), so one answer for all of them is
    as true as any; a request that arrives after a commit is handled in a later turn
    and reads the mark again.  Under load that turns a few syscalls per request (the
    shared-memory read lock) into a few per turn."""

    def __init__(self, marks: Callable[[], int | None], *, max_entries: int = MAX_ENTRIES):
        self._marks = marks
        self._entries: dict[Hashable, Entry] = {}
        self._building: dict[Hashable, tuple[int, asyncio.Future]] = {}
        self._turn_mark: int | None = None
        self.max_entries = max_entries
        self.hits = self.builds = self.mark_reads = 0

    def _mark(self) -> int | None:
        if self._turn_mark is not None:
            return self._turn_mark
        mark = self._marks()
        self.mark_reads += 1
        if mark is not None:
            self._turn_mark = mark
            # Runs at the start of the next turn: nothing after this one reuses the mark.
            asyncio.get_running_loop().call_soon(self._end_turn)
        return mark

    def _end_turn(self) -> None:
        self._turn_mark = None

    def peek(self, key: Hashable) -> bytes | None:
        """The kept answer for ``key`` if it is still true; None otherwise (then :meth:`get`)."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        # The clock alone decides (not the store's change mark): a hit or a miss tells the
        # reader nothing about when anything was committed.
        if time.time() < entry.expires_at:
            self.hits += 1
            return entry.body
        return None

    async def get(self, key: Hashable, build: Callable[[], Awaitable[Built]]) -> bytes:
        """The answer for ``key``: kept, or built now (``build`` returns it and its expiry)."""
        body = self.peek(key)
        if body is not None:
            return body
        mark = self._mark()
        if mark is None:  # cannot tell whether the store moved: never reuse anything
            self.builds += 1
            return (await build())[0]
        pending = self._building.get(key)
        if pending is not None and pending[0] == mark:
            try:
                return await asyncio.shield(pending[1])
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise  # this request was cancelled
                # The request that was building went away: build for this one.
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._building[key] = (mark, future)
        try:
            self.builds += 1
            body, expires_at = await build()
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # read here: nobody may be waiting for it
            raise
        else:
            future.set_result(body)
            if len(self._entries) >= self.max_entries and key not in self._entries:
                self._entries.clear()  # rare (thousands of bounties): start over rather than track age
            epoch_end = (math.floor(time.time() / EPOCH_S) + 1) * EPOCH_S
            self._entries[key] = Entry(mark, min(expires_at, epoch_end), body)
            return body
        finally:
            if self._building.get(key, (None, None))[1] is future:
                del self._building[key]

    def clear(self) -> None:
        self._entries.clear()


def dumps(value: Any) -> bytes:
    """JSON as aiohttp's ``json_response`` writes it."""
    return json.dumps(value).encode()


def next_reveal(best_json: str | None, now: float) -> float:
    """The next moment after ``now`` at which what agents see of this best changes: the
    earliest reveal time still ahead anywhere in its chain (the agent's view walks down
    ``prior`` past every link not yet revealed: ``disclosure.agent_best``)."""
    if not best_json:
        return FOREVER
    try:
        best = json.loads(best_json)
    except ValueError:
        return now  # unreadable: do not keep whatever was built from it
    soonest = FOREVER
    for _ in range(_MAX_CHAIN):
        if not isinstance(best, dict):
            break
        reveal = best.get("reveal_at")
        if isinstance(reveal, (int, float)) and reveal > now:
            soonest = min(soonest, float(reveal))
        best = best.get("prior")
    return soonest


# -- the answers kept here: each builder returns the bytes and when they expire ------------


async def bounties_built(service: "Coordinator") -> tuple[bytes, float]:
    now = time.time()  # before the views: a reveal between the two only rebuilds once more
    views = await service.list_bounties()
    rows = await service.store.fetchall("SELECT best_json FROM bounties WHERE best_json IS NOT NULL")
    return dumps({"bounties": views}), min((next_reveal(r["best_json"], now) for r in rows), default=FOREVER)


async def bounty_built(service: "Coordinator", bounty_id: str) -> tuple[bytes, float]:
    now = time.time()
    view = await service.get_bounty(bounty_id)  # an unknown id raises: 404, nothing kept
    best = await service.store.scalar("SELECT best_json FROM bounties WHERE id = ?", (bounty_id,))
    return dumps(view), next_reveal(best, now)


async def status_built(service: "Coordinator") -> tuple[bytes, float]:
    expires_at = time.time() + STATUS_TTL_S
    try:
        node = await service.backend.status()
        lightning = {"ok": True, "backend": node.backend, "network": node.network, "alias": node.alias,
                     "node_id": node.node_id, "block_height": node.block_height}
    except Exception as exc:  # noqa: BLE001 - status must answer even when the node does not
        lightning = {"ok": False, "error": str(exc)}
    counts = await service.store.fetchall("SELECT status, COUNT(*) AS n FROM bounties GROUP BY status")
    return dumps({"ok": True, "service": "l402tui coordinator", "lightning": lightning,
                  "bounties": {r["status"]: r["n"] for r in counts}}), expires_at
