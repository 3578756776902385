"""The public reads' cache (coordinator/read_cache.py) over a real socket: answers come
from it within a wall-clock second, whatever is committed (a miss must not time a commit),
and never outlive that second or the moment a verdict is revealed; the free-GET fast path
refuses what the full chain does."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import pytest

from l402tui.coordinator.http_common import COORDINATOR, READS
from l402tui.coordinator.read_cache import ChangeMarks, ReadCache, next_reveal
from l402tui.coordinator.service import Coordinator
from l402tui.store import Store
from tests.coordinator.conftest import make_bounty, url


async def _get(srv, path: str, **kw) -> tuple[int, dict, aiohttp.typedefs.LooseHeaders]:
    async with aiohttp.ClientSession() as session:
        async with session.get(url(srv, path), **kw) as r:
            return r.status, await r.json(), r.headers


async def test_a_bounty_created_through_another_store_shows_on_the_next_get(quiet_server, cfg, net, tmp_path):
    server = await quiet_server()
    first = (await server.app[COORDINATOR].create_bounty(make_bounty(tmp_path / "s1"), self_funded=True))
    reads: ReadCache = server.app[READS]
    status, body, headers = await _get(server, "/api/v1/bounties")
    assert status == 200 and [b["id"] for b in body["bounties"]] == [first["bounty"]["id"]]
    assert headers["Content-Type"] == "application/json; charset=utf-8"
    hits = reads.hits
    for _ in range(5):  # two reads in the same wall-clock second: the second is a hit
        assert (await _get(server, "/api/v1/bounties"))[1] == body
        if reads.hits > hits:
            break
    assert reads.hits > hits, "no read came from the cache"

    # Another connection on the same file (as `l402tui bounty create` in another process would).
    other_store = await Store.open(cfg.db_path)
    try:
        other = Coordinator(cfg, other_store, net.node("coordinator"))
        second = await other.create_bounty(make_bounty(tmp_path / "s2", name="second"), self_funded=True)
    finally:
        await other_store.close()
    # Within a second (entries live until the wall clock's second ends, commits or not).
    await asyncio.sleep(1.05)
    status, body, _ = await _get(server, "/api/v1/bounties")
    assert {b["id"] for b in body["bounties"]} == {first["bounty"]["id"], second["bounty"]["id"]}
    status, one, _ = await _get(server, f"/api/v1/bounties/{second['bounty']['id']}")
    assert status == 200 and one["id"] == second["bounty"]["id"]
    status, counts, _ = await _get(server, "/api/v1/status")
    assert sum(counts["bounties"].values()) == 2


async def test_a_verdict_shows_when_its_reveal_time_passes_without_any_write(quiet_server, cfg, tmp_path):
    server = await quiet_server()
    coordinator = server.app[COORDINATOR]
    bounty_id = (await coordinator.create_bounty(make_bounty(tmp_path / "s"), self_funded=True))["bounty"]["id"]
    reveal = time.time() + 1.5
    best = {"submission_id": "sub-revealed-later", "reveal_at": reveal,
            "published": {"metric": "error", "score": 1.0, "improvement": 0.5},
            "prior": {"status": "measured", "metrics": {"error": 3.0}}}
    other_store = await Store.open(cfg.db_path)
    try:
        async with other_store.transaction() as txn:
            await txn.execute("UPDATE bounties SET best_json = ? WHERE id = ?", (json.dumps(best), bounty_id))
    finally:
        await other_store.close()
    reads: ReadCache = server.app[READS]
    for path in (f"/api/v1/bounties/{bounty_id}", "/api/v1/bounties"):
        _, body, _ = await _get(server, path)
        shown = body if "id" in body else body["bounties"][0]
        assert shown["best"] == {"status": "baseline"}, shown["best"]
    mark = reads._marks()
    hits = reads.hits
    assert (await _get(server, f"/api/v1/bounties/{bounty_id}"))[1]["best"] == {"status": "baseline"}
    assert reads.hits == hits + 1
    await asyncio.sleep(max(0.0, reveal - time.time()) + 0.05)
    assert reads._marks() == mark, "something wrote meanwhile: this test would not show the expiry"
    _, one, _ = await _get(server, f"/api/v1/bounties/{bounty_id}")
    _, listed, _ = await _get(server, "/api/v1/bounties")
    for shown in (one, listed["bounties"][0]):
        assert shown["best"]["status"] == "measured" and shown["best"]["submission_id"] == "sub-revealed-later"
    assert reads._marks() == mark


def test_next_reveal_walks_the_whole_chain():
    now = 1000.0
    chain = {"submission_id": "c", "reveal_at": 1300.0,
             "prior": {"submission_id": "b", "reveal_at": 1200.0,
                       "prior": {"submission_id": "a", "reveal_at": 900.0, "prior": {"status": "measured"}}}}
    assert next_reveal(json.dumps(chain), now) == 1200.0
    assert next_reveal(json.dumps(chain), 1250.0) == 1300.0
    assert next_reveal(json.dumps(chain), 1300.0) == float("inf")
    assert next_reveal(None, now) == float("inf")
    assert next_reveal("{not json", now) == now  # unreadable: never kept


async def test_concurrent_misses_share_one_build_and_a_failed_build_is_not_kept(monkeypatch):
    from l402tui.coordinator import read_cache

    clock = [1000.25]
    monkeypatch.setattr(read_cache.time, "time", lambda: clock[0])
    version = [1]
    cache = ReadCache(lambda: version[0])
    started = asyncio.Event()
    release = asyncio.Event()
    calls = []

    async def build():
        calls.append(1)
        started.set()
        await release.wait()
        return b"x", float("inf")

    waiters = [asyncio.create_task(cache.get("k", build)) for _ in range(5)]
    await started.wait()
    release.set()
    assert await asyncio.gather(*waiters) == [b"x"] * 5 and len(calls) == 1

    async def refuse():
        raise LookupError("no such bounty")

    with pytest.raises(LookupError):
        await cache.get("missing", refuse)
    with pytest.raises(LookupError):
        await cache.get("missing", refuse)
    await asyncio.sleep(0)  # a new turn of the loop: the mark is read again
    version[0] = 2
    calls.clear()
    # A commit changes nothing until the clock's second ends: hits and misses must not tell
    # a reader when something was committed.
    assert await cache.get("k", build) == b"x" and calls == [], "a commit alone must not rebuild"
    clock[0] = 1001.0
    assert await cache.get("k", build) == b"x" and len(calls) == 1, "a new second must rebuild"


def test_change_marks_without_a_file_never_vouch_for_an_entry(tmp_path):
    assert ChangeMarks(":memory:").read() is None
    assert ChangeMarks(None).read() is None


@pytest.fixture
async def quiet_server(cfg, net):
    """The app over a coordinator whose background work is not started: nothing writes
    unless the test does.  ``quiet_server(**overrides)`` makes one."""
    from aiohttp.test_utils import TestServer

    from l402tui.coordinator.app import create_app

    opened = []

    async def make(**overrides):
        mine = cfg.with_overrides(overrides)
        store = await Store.open(mine.db_path)
        srv = TestServer(create_app(Coordinator(mine, store, net.node("coordinator")), manage_lifecycle=False),
                         host="127.0.0.1")
        await srv.start_server()
        opened.append((srv, store))
        return srv

    yield make
    for srv, store in opened:
        await srv.close()
        await store.close()


async def test_the_free_get_fast_path_refuses_what_the_full_chain_refuses(quiet_server):
    srv = await quiet_server(**{"rate_limits.per_ip_per_minute": 3})
    status, body, _ = await _get(srv, "/api/v1/bounties?sneaky=1")
    assert status == 422 and "sneaky" in body["message"]
    status, body, _ = await _get(srv, "/api/v1/bounties/" + "x" * 300)
    assert status == 404
    status, body, _ = await _get(srv, "/api/v1/bounties/no-such-bounty")
    assert status == 404 and body["error"] == "unknown_bounty"
    # Three requests a minute from one address: the next free GET is refused like any other.
    status, body, headers = await _get(srv, "/api/v1/status")
    assert status == 429 and int(headers["Retry-After"]) >= 1, body
    status, _, _ = await _get(srv, "/api/v1/bounties")
    assert status == 429


async def test_a_request_waiting_on_a_cancelled_build_builds_for_itself():
    cache = ReadCache(lambda: 1)
    started = asyncio.Event()

    async def slow():
        started.set()
        await asyncio.sleep(30)
        return b"never", float("inf")

    async def quick():
        return b"fresh", float("inf")

    first = asyncio.create_task(cache.get("k", slow))
    await started.wait()
    second = asyncio.create_task(cache.get("k", quick))
    await asyncio.sleep(0)
    first.cancel()  # the client that was building went away
    assert await second == b"fresh"
    with pytest.raises(asyncio.CancelledError):
        await first


def test_change_marks_never_create_a_database_nor_hold_back_a_checkpoint(tmp_path):
    import sqlite3

    missing = tmp_path / "missing.sqlite"
    assert ChangeMarks(missing).read() is None and not missing.exists()
    path = tmp_path / "db.sqlite"
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("PRAGMA journal_mode = WAL")
    writer.execute("CREATE TABLE t (x)")
    marks = ChangeMarks(path)
    before = marks.read()
    writer.execute("INSERT INTO t VALUES (1)")
    assert marks.read() != before
    # No read transaction left open by the mark: a full checkpoint is not blocked by it.
    busy, _, _ = writer.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    assert busy == 0
    marks.close()
    writer.close()
