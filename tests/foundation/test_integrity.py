"""A corrupt or too-new database is refused; committed writes that vanish (a WAL deleted
after a crash, a replaced database) are reported once and stay open until acknowledged."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from l402tui.store import Store, open_sync
from l402tui.store.integrity import DatabaseRefused, HighWater, Mark, check_database
from l402tui.store.migrations import LATEST


async def _write_events(store: Store, n: int) -> None:
    for i in range(n):
        async with store.transaction() as txn:
            await txn.event("test.thing", f"t{i}")


async def test_normal_restarts_report_nothing(tmp_path):
    path = tmp_path / "db.sqlite"
    for _ in range(3):
        store = await Store.open(path)
        await _write_events(store, 2)
        await store.close()
    store = await Store.open(path)
    assert await store.fetchall("SELECT * FROM store_findings") == []
    assert HighWater(path).read().event_id == 6
    await store.close()


def test_a_deleted_wal_after_kill_9_is_reported_once(tmp_path):
    path = tmp_path / "db.sqlite"
    open_sync(path).close()  # schema checkpointed into the file
    # A child commits two events through the Store, then dies without closing (kill -9).
    child = textwrap.dedent(f"""
        import asyncio, os
        from l402tui.store import Store
        async def main():
            store = await Store.open({str(path)!r})
            for i in range(2):
                async with store.transaction() as txn:
                    await txn.event("token.minted", f"t{{i}}")
            os.kill(os.getpid(), 9)
        asyncio.run(main())
    """)
    died = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=60)
    assert died.returncode == -9, died.stderr
    assert (tmp_path / "db.sqlite-wal").stat().st_size > 0
    os.unlink(tmp_path / "db.sqlite-wal")
    (tmp_path / "db.sqlite-shm").unlink(missing_ok=True)

    db = open_sync(path)
    findings = list(db.query("SELECT kind, message, acknowledged_at FROM store_findings"))
    assert [f["kind"] for f in findings] == ["lost_writes"]
    assert "event 2 was committed" in findings[0]["message"] and "holds no events" in findings[0]["message"]
    assert [r["kind"] for r in db.query("SELECT kind FROM events")] == ["store.lost_writes"]
    db.close()
    db = open_sync(path)  # reported once: the stamp now names what the database holds
    assert db.execute("SELECT COUNT(*) FROM store_findings").fetchone()[0] == 1
    db.close()


def test_a_replaced_database_reuses_event_ids_and_is_still_caught(tmp_path):
    path = tmp_path / "db.sqlite"
    db = open_sync(path)
    db.execute("INSERT INTO events (kind, created_at) VALUES ('a', 1.0)")
    db.conn.commit()
    db.close()
    HighWater(path).advance(Mark(1, 1.0))
    for suffix in ("", "-wal", "-shm"):
        (tmp_path / f"db.sqlite{suffix}").unlink(missing_ok=True)
    db = open_sync(path)  # a fresh database ...
    db.execute("INSERT INTO events (kind, created_at) VALUES ('b', 2.0)")  # ... whose event 1 is another one
    db.conn.commit()
    db.close()
    found = sqlite3.connect(path).execute("SELECT kind FROM store_findings").fetchall()
    assert found == [("lost_writes",)]


def test_the_stamp_only_moves_forward_and_a_torn_one_claims_nothing(tmp_path):
    stamp = HighWater(tmp_path / "db.sqlite")
    stamp.advance(Mark(5, 5.5))
    stamp.advance(Mark(3, 3.5))  # another process's older commit
    assert stamp.read() == Mark(5, 5.5)
    stamp.reset(Mark(2, 2.5))
    assert stamp.read() == Mark(2, 2.5)
    assert os.stat(stamp.path).st_mode & 0o077 == 0
    stamp.path.write_bytes(b'{"event_id": 9, "crea')
    assert stamp.read() is None


def test_a_corrupted_page_is_refused_with_the_way_back(tmp_path):
    path = tmp_path / "db.sqlite"
    db = open_sync(path)
    db["filler"].insert_all({"n": i, "text": "x" * 200} for i in range(300))
    db.close()
    check_database(path, LATEST)  # whole: passes
    with open(path, "r+b") as f:
        f.seek(4096 * 3)
        f.write(os.urandom(4096))
    with pytest.raises(DatabaseRefused) as refused:
        check_database(path, LATEST)
    assert "is corrupt" in str(refused.value) and "l402tui backup" in str(refused.value)


def test_a_file_that_is_not_a_database_is_refused(tmp_path):
    path = tmp_path / "db.sqlite"
    path.write_bytes(os.urandom(8192))
    with pytest.raises(DatabaseRefused, match="corrupt"):
        check_database(path, LATEST)


def test_a_newer_schema_is_refused(tmp_path):
    path = tmp_path / "db.sqlite"
    open_sync(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {LATEST + 1}")
    conn.close()
    with pytest.raises(DatabaseRefused, match="newer than this l402tui"):
        check_database(path, LATEST)
