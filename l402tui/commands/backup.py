"""`l402tui backup DEST`: a consistent copy of both databases and the keys.

Each database is copied with SQLite's online backup API (a snapshot of committed rows,
safe while `serve` runs), checked with ``quick_check``, and left in rollback-journal
mode so the copy is one self-contained file.  Keys (the admin macaroon, the L402 master
key, any other ``*.key``) are copied as they are.  DEST is 0700 and every file 0600,
whatever the umask: a backup holds the same secrets as the data dir.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from pathlib import Path

import click

from l402tui.config import Config

DATABASES = ("l402tui.sqlite", "simnet.sqlite")
KEY_FILES = ("admin.macaroon", "l402_master.key")
MANIFEST = "backup.json"


class BackupError(Exception):
    pass


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _copy_database(src: Path, dest: Path) -> dict:
    from l402tui.store.privacy import FILE_MODE, make_private_file

    tmp = dest.with_name(dest.name + ".partial")
    tmp.unlink(missing_ok=True)
    make_private_file(tmp)
    source = sqlite3.connect(f"file:{src}?mode=rw", uri=True, timeout=30)  # rw: WAL readers need the -shm
    try:
        source.execute("PRAGMA query_only = ON")
        target = sqlite3.connect(tmp)
        try:
            source.backup(target)  # one step: a single read snapshot, consistent across tables
            target.execute("PRAGMA journal_mode = DELETE")  # one self-contained file
            check = [r[0] for r in target.execute("PRAGMA quick_check").fetchall()]
            if check != ["ok"]:
                raise BackupError(f"the copy of {src.name} fails quick_check ({'; '.join(check[:3])}); "
                                  "the source may be corrupt: run `l402tui serve` to have it checked")
            tables = [r[0] for r in target.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
            counts = {t: target.execute(f'SELECT COUNT(*) FROM "{t}"').fetchone()[0] for t in tables}
            version = target.execute("PRAGMA user_version").fetchone()[0]
        finally:
            target.close()
    except sqlite3.DatabaseError as exc:
        tmp.unlink(missing_ok=True)
        raise BackupError(f"cannot copy {src}: {exc}") from None
    finally:
        source.close()
    os.chmod(tmp, FILE_MODE)
    os.replace(tmp, dest)
    return {"file": dest.name, "sha256": _sha256(dest), "schema_version": version, "rows": counts}


def _copy_key(src: Path, dest: Path) -> dict:
    from l402tui.store.privacy import FILE_MODE

    data = src.read_bytes()
    tmp = dest.with_name(dest.name + ".partial")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, FILE_MODE)
    os.replace(tmp, dest)
    return {"file": dest.name, "sha256": hashlib.sha256(data).hexdigest()}


def make_backup(data_dir: Path, dest: Path, *, overwrite: bool = False) -> dict:
    """Copy the databases and keys of ``data_dir`` into ``dest``; returns the manifest."""
    from l402tui.store.privacy import make_private_dir

    data_dir, dest = Path(data_dir).resolve(), Path(dest).expanduser().resolve()
    if dest == data_dir or data_dir in dest.parents:
        raise BackupError(f"{dest} is inside the data dir {data_dir}; back up to another place (another disk, "
                          "ideally)")
    if not (data_dir / DATABASES[0]).is_file():
        raise BackupError(f"no coordinator database at {data_dir / DATABASES[0]}; pass --data-dir of the coordinator")
    if (dest / MANIFEST).exists() and not overwrite:
        raise BackupError(f"{dest} already holds a backup; pick a new folder or pass --overwrite")
    make_private_dir(dest)
    if os.stat(dest).st_mode & 0o077:
        raise BackupError(f"{dest} is open to other users; use a new folder or `chmod 700 {dest}` first")
    manifest: dict = {"created_at": time.time(), "source": str(data_dir), "databases": [], "keys": []}
    for name in DATABASES:
        if (data_dir / name).is_file():
            manifest["databases"].append(_copy_database(data_dir / name, dest / name))
    keys = set(KEY_FILES) | {p.name for p in data_dir.glob("*.key")}
    for name in sorted(keys):
        if (data_dir / name).is_file():
            manifest["keys"].append(_copy_key(data_dir / name, dest / name))
    fd = os.open(dest / MANIFEST, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)
    return manifest


@click.command()
@click.argument("dest", type=click.Path(file_okay=False, path_type=Path))
@click.option("--overwrite", is_flag=True, help="Replace a backup already in DEST.")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
@click.pass_obj
def backup(cfg: Config, dest: Path, overwrite: bool, as_json: bool) -> None:
    """Copy the coordinator's and the simulated network's databases and the keys into DEST.

    Safe while `l402tui serve` runs (each database is one consistent snapshot).  To
    restore: stop l402tui, copy the files from DEST into the data dir (delete the old
    *-wal and *-shm files), start it; the first start reports the writes made since the
    backup as lost and reconciles the store with the Lightning node.
    """
    try:
        manifest = make_backup(cfg.data_dir, dest, overwrite=overwrite)
    except (BackupError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(manifest, indent=2, sort_keys=True))
        return
    for db in manifest["databases"]:
        rows = sum(db["rows"].values())
        click.echo(f"{db['file']:<16} schema {db['schema_version']}, {len(db['rows'])} tables, {rows} rows, "
                   f"sha256 {db['sha256'][:16]}…")
    for key in manifest["keys"]:
        click.echo(f"{key['file']:<16} sha256 {key['sha256'][:16]}…")
    click.echo(f"backup written to {Path(dest).expanduser().resolve()} (0700; files 0600)")
