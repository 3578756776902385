from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from l402tui.store import Store, open_sync
from l402tui.store.migrations import LATEST, schema_version


def test_fresh_database_is_latest_and_wal(tmp_path: Path) -> None:
    db = open_sync(tmp_path / "x.sqlite")
    assert schema_version(db) == LATEST
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = set(db.table_names())
    assert {"bounties", "heldout_commitments", "submissions", "evaluations", "eval_runs", "invoices",
            "payments", "ledger_entries", "l402_root_keys", "agent_experiments", "events", "timers"} <= tables


def test_migrating_an_old_database_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    old = open_sync(path, migrate_to=1)
    assert schema_version(old) == 1
    assert "timers" not in old.table_names()
    old["l402_root_keys"].insert({"key_id": "ab" * 32, "root_key": b"\x01" * 32, "token_id": "t1",
                                  "payment_hash": "cd" * 32, "bounty_id": "b1", "capabilities": "download",
                                  "created_at": 1.0})
    old["bounties"].insert({"id": "b1", "name": "old", "status": "OPEN", "spec_json": "{}", "pool_msat": 5,
                            "created_at": 1.0, "updated_at": 1.0})
    old.conn.commit()
    old.close()

    new = open_sync(path)
    assert schema_version(new) == LATEST
    row = new.execute("SELECT key_id, root_key, revoked_at FROM l402_root_keys").fetchone()
    assert row == ("ab" * 32, b"\x01" * 32, None)
    assert new.execute("SELECT name, pool_msat FROM bounties").fetchall() == [("old", 5)]
    assert "timers" in new.table_names()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.sqlite"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {LATEST + 5}")
    conn.close()
    with pytest.raises(RuntimeError, match="newer than this l402tui"):
        open_sync(path)


async def test_transaction_rolls_back_and_records_events(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "s.sqlite")
    try:
        async with store.transaction() as txn:
            await txn.insert("bounties", {"id": "b1", "name": "n", "status": "DRAFT", "spec_json": "{}",
                                          "pool_msat": 1000, "created_at": 1.0, "updated_at": 1.0})
            await txn.event("bounty.created", "b1", name="n")
        with pytest.raises(ZeroDivisionError):
            async with store.transaction() as txn:
                await txn.execute("UPDATE bounties SET status='OPEN' WHERE id='b1'")
                await txn.event("bounty.opened", "b1")
                1 / 0
        assert await store.scalar("SELECT status FROM bounties WHERE id='b1'") == "DRAFT"
        events = await store.fetchall("SELECT kind, subject_id FROM events ORDER BY id")
        assert events == [{"kind": "bounty.created", "subject_id": "b1"}]
    finally:
        await store.close()


async def test_other_tasks_never_read_an_open_transactions_rows(tmp_path: Path) -> None:
    """An event stream or a pane reading while a payout's transaction is open must not
    see rows that may yet be rolled back; the transaction's own task sees its writes."""
    import asyncio

    store = await Store.open(tmp_path / "s.sqlite")
    inside, release = asyncio.Event(), asyncio.Event()
    seen_inside: list = []

    async def writer(fail: bool) -> None:
        async with store.transaction() as txn:
            await txn.event("payout.sent", "b1")
            seen_inside.append(await store.scalar("SELECT COUNT(*) FROM events"))  # its own write
            inside.set()
            await release.wait()
            if fail:
                raise RuntimeError("the payment failed after all")

    try:
        task = asyncio.create_task(writer(fail=True))
        await inside.wait()
        assert await store.scalar("SELECT COUNT(*) FROM events") == 0  # not committed: invisible
        release.set()
        with pytest.raises(RuntimeError):
            await task
        assert seen_inside == [1]
        assert await store.scalar("SELECT COUNT(*) FROM events") == 0
        inside.clear(), release.clear()
        task = asyncio.create_task(writer(fail=False))
        await inside.wait()
        release.set()
        await task
        assert await store.scalar("SELECT COUNT(*) FROM events") == 1  # committed: visible at once
    finally:
        await store.close()
