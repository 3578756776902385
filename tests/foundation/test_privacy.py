"""The data dir and what l402tui puts in it are private, whatever the umask, and an
exposed one is reported with the command that fixes it."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import pytest

from l402tui.store import open_sync
from l402tui.store.privacy import (DataDirExposed, check_private, find_exposures, make_private_dir,
                                   make_private_file, make_tree_private)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@pytest.fixture
def open_umask():
    old = os.umask(0o000)
    yield
    os.umask(old)


def test_a_database_created_under_umask_000_is_private_with_its_wal_and_shm(tmp_path, open_umask):
    db_path = tmp_path / "data" / "l402tui.sqlite"
    db = open_sync(db_path)
    db.execute("INSERT INTO events (kind, created_at) VALUES ('x', 1)")
    db.conn.commit()
    other = sqlite3.connect(db_path)  # a second connection keeps the WAL and SHM in place
    assert other.execute("SELECT COUNT(*) FROM events").fetchone()[0] >= 1
    assert _mode(db_path.parent) == 0o700
    for name in ("l402tui.sqlite", "l402tui.sqlite-wal", "l402tui.sqlite-shm"):
        assert _mode(db_path.parent / name) == 0o600, name
    other.close()
    db.close()


def test_the_sim_network_file_is_private_under_umask_000(tmp_path, open_umask):
    from l402tui.lightning.sim import SimNetwork

    net = SimNetwork.open(tmp_path / "data" / "simnet.sqlite")
    net.ledger.close()
    assert _mode(tmp_path / "data") == 0o700
    assert _mode(tmp_path / "data" / "simnet.sqlite") == 0o600


def test_make_private_file_leaves_an_existing_file_alone_and_the_check_reports_it(tmp_path):
    data = make_private_dir(tmp_path / "data")
    secret = data / "admin.macaroon"
    secret.write_text("x")
    os.chmod(secret, 0o644)
    make_private_file(secret)
    assert _mode(secret) == 0o644  # not silently "fixed": the operator must learn it was exposed
    with pytest.raises(DataDirExposed) as refused:
        check_private(data)
    text = str(refused.value)
    assert "admin.macaroon" in text and "open to group and other users (read)" in text
    assert f"chmod -R go-rwx {data}" in text


def test_a_private_dir_passes_and_any_group_or_other_bit_fails(tmp_path):
    data = make_private_dir(tmp_path / "data")
    make_private_file(data / "l402tui.sqlite")
    check_private(data)
    for bits in (0o040, 0o020, 0o010, 0o004, 0o002, 0o001):
        os.chmod(data, 0o700 | bits)
        assert [e.path for e in find_exposures(data)] == [data], oct(bits)
    os.chmod(data, 0o700)


def test_a_symlinked_secret_is_refused(tmp_path):
    data = make_private_dir(tmp_path / "data")
    elsewhere = tmp_path / "elsewhere.sqlite"
    elsewhere.write_text("")
    os.chmod(elsewhere, 0o600)
    (data / "simnet.sqlite").symlink_to(elsewhere)
    with pytest.raises(DataDirExposed, match="symbolic link"):
        check_private(data)


def test_make_tree_private_takes_group_and_other_bits_off_a_copied_tree(tmp_path):
    root = tmp_path / "copy"
    (root / "heldout" / "labels").mkdir(parents=True)
    label = root / "heldout" / "labels" / "y.txt"
    label.write_text("42")
    tool = root / "run.sh"
    tool.write_text("#!/bin/sh\n")
    for p, m in ((root, 0o755), (root / "heldout", 0o777), (label, 0o666), (tool, 0o755)):
        os.chmod(p, m)
    make_tree_private(root)
    assert (_mode(root), _mode(root / "heldout"), _mode(label), _mode(tool)) == (0o700, 0o700, 0o600, 0o700)


def test_a_missing_data_dir_has_nothing_to_report(tmp_path):
    check_private(tmp_path / "not-yet")
