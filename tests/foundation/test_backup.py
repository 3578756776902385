"""`l402tui backup DEST`: both databases as consistent snapshots, the keys, all private."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

from l402tui.store import Store

CLI = [sys.executable, "-m", "l402tui.cli"]


def _rows(path: Path) -> dict[str, list[tuple]]:
    conn = sqlite3.connect(path)
    try:
        tables = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        return {t: conn.execute(f'SELECT * FROM "{t}" ORDER BY 1').fetchall() for t in tables}
    finally:
        conn.close()


async def _seed(data: Path) -> None:
    from l402tui.lightning.sim import SimNetwork

    store = await Store.open(data / "l402tui.sqlite")
    for i in range(50):
        async with store.transaction() as txn:
            await txn.event("bounty.created", f"b{i}", name=f"bounty {i}")
    await store.close()
    net = SimNetwork.open(data / "simnet.sqlite")
    await net.create_node("coordinator", 5_000)
    sponsor = await net.create_node("sponsor", 1_000_000)
    invoice = await net.node("coordinator").create_invoice(21_000, "l402tui: download for bounty b1")
    await sponsor.pay(invoice.bolt11)
    await net.close()
    for name, data_bytes in (("admin.macaroon", b"AgEHbDQwMnR1aQ==\n"), ("l402_master.key", os.urandom(32))):
        fd = os.open(data / name, os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, data_bytes)
        os.close(fd)


def _backup(data: Path, dest: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, "--data-dir", str(data), "backup", str(dest), *extra], capture_output=True,
                          text=True, timeout=60, preexec_fn=lambda: os.umask(0o022))


async def test_backup_copies_committed_rows_of_both_databases_and_the_keys_privately(tmp_path):
    data = tmp_path / "data"
    await _seed(data)
    # A writer in the middle of a transaction: the backup must see only committed rows.
    writer = sqlite3.connect(data / "l402tui.sqlite", isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO events (kind, created_at) VALUES ('uncommitted', 1)")
    committed = _rows(data / "l402tui.sqlite")
    dest = tmp_path / "backups" / "monday"
    done = _backup(data, dest)
    writer.execute("ROLLBACK")
    writer.close()
    assert done.returncode == 0, done.stderr
    assert "l402tui.sqlite" in done.stdout and "simnet.sqlite" in done.stdout

    copy = _rows(dest / "l402tui.sqlite")
    assert copy == committed and len(copy["events"]) == 50
    assert ("uncommitted",) not in [(r[1],) for r in copy["events"]]
    assert _rows(dest / "simnet.sqlite") == _rows(data / "simnet.sqlite")
    sim = sqlite3.connect(dest / "simnet.sqlite")
    assert sim.execute("SELECT state FROM invoices").fetchall() == [("SETTLED",)]
    assert sim.execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # one self-contained file
    sim.close()
    for name in ("admin.macaroon", "l402_master.key"):
        assert (dest / name).read_bytes() == (data / name).read_bytes()
    assert stat.S_IMODE(dest.stat().st_mode) == 0o700
    for path in dest.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path

    # The copy is a working coordinator database.
    store = await Store.open(dest / "l402tui.sqlite")
    assert await store.scalar("SELECT COUNT(*) FROM events") == 50
    await store.close()


async def test_backup_refuses_to_overwrite_or_to_land_inside_the_data_dir(tmp_path):
    data = tmp_path / "data"
    await _seed(data)
    dest = tmp_path / "b"
    assert _backup(data, dest).returncode == 0
    again = _backup(data, dest)
    assert again.returncode == 1 and "already holds a backup" in again.stderr
    assert _backup(data, dest, "--overwrite").returncode == 0
    inside = _backup(data, data / "backup")
    assert inside.returncode == 1 and "inside the data dir" in inside.stderr


def test_backup_without_a_coordinator_database_says_so(tmp_path):
    done = _backup(tmp_path / "empty", tmp_path / "b")
    assert done.returncode == 1 and "no coordinator database" in done.stderr
