"""Macaroon root keys that a copy of the database cannot mint with.

A token's root key is ``HMAC-SHA256(master, identifier)``.  The master is 32
random bytes in ``<data dir>/l402_master.key`` (0600), outside the database; the
``l402_root_keys`` row of a token holds only its scope, its revocation time and a
check value (``HMAC(root key, "check")``) that tells a replaced master apart from
a forged token.  So whoever reads the database (a backup, a local user, a leaked
WAL) can see which tokens exist but cannot sign a macaroon for any of them.

Rows written before this scheme held the random root key itself (``key_kind``
NULL).  The first use of a store seals them in place, XOR-ed with a pad derived
from the master, so those tokens keep working and their keys stop being
readable at rest.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from l402tui.store import Store
from l402tui.store.db import Txn
from l402tui.store.findings import is_lost_paid_token, token_readopted

MASTER_FILE = "l402_master.key"
_DERIVE = b"l402tui root key v1\x00"
_SEAL = b"l402tui sealed key v1\x00"
_CHECK = b"l402tui root key check"
DERIVED, SEALED = "derived", "sealed"


class MasterKeyError(Exception):
    """The master key file is unusable (readable by others, damaged); says how to fix it."""


@dataclass(frozen=True)
class RootKey:
    key: bytes
    token_id: str | None
    bounty_id: str | None
    capabilities: frozenset[str]


def key_id_of(identifier: bytes) -> str:
    return hashlib.sha256(identifier).hexdigest()


def _hmac(key: bytes, msg: bytes) -> bytes:
    return hmac.new(key, msg, hashlib.sha256).digest()


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def load_or_create_master(path: Path) -> bytes:
    """The 32-byte master from ``path`` (64 hex digits), created 0600 if absent.

    Creation is atomic (written aside, then hard-linked into place) so two
    processes starting together agree on one master and nobody reads half a file.
    """
    try:
        return _read_master(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_bytes(32).hex() + "\n")
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process won the race: use its master
    finally:
        tmp.unlink(missing_ok=True)
    return _read_master(path)


def _read_master(path: Path) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise MasterKeyError(f"{path} cannot be opened ({exc.strerror}); it must be a plain file owned by "
                             "you, not a link") from None
    with os.fdopen(fd) as f:
        st = os.fstat(f.fileno())
        if st.st_uid != os.geteuid():
            raise MasterKeyError(f"{path} belongs to another user; it signs every L402 token. Move it away "
                                 "(every token issued so far stops working) or restore your own copy")
        if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise MasterKeyError(f"{path} can be read or written by other users; it signs every L402 token. "
                                 f"Fix it with: chmod 600 {path}")
        text = f.read(200).strip()
    try:
        master = bytes.fromhex(text)
    except ValueError:
        master = b""
    if len(master) != 32:
        raise MasterKeyError(f"{path} is damaged (expected 64 hex digits); restore it from a backup, "
                             "or delete it to start over (every token issued so far stops working)")
    return master


class RootKeyStore:
    """Root keys derived from the master, rows in SQLite, and a small in-process cache.

    The cache is dropped when a token is revoked through this object; rows changed
    by another process are seen within ``ttl_s`` (or at once with ``fresh=True``).
    """

    def __init__(self, store: Store, ttl_s: float = 10.0, max_entries: int = 10_000,
                 master_path: Path | None = None):
        self.store = store
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        in_memory = str(store.path) == ":memory:"
        self.master_path = None if in_memory else (master_path or store.path.parent / MASTER_FILE)
        self._master: bytes | None = secrets.token_bytes(32) if in_memory else None
        self._sealed = False
        self._cache: OrderedDict[str, tuple[RootKey | None, float]] = OrderedDict()

    def master(self) -> bytes:
        """The master key, loaded (or created) on first use."""
        if self._master is None:
            self._master = load_or_create_master(self.master_path)
        return self._master

    async def prepare(self) -> None:
        """Load the master and seal legacy rows now (``serve`` calls this at start, so
        a bad key file is refused before the first request)."""
        if not self._sealed:
            async with self.store.transaction() as txn:
                sealed = await self._seal_legacy_rows(txn)
            if sealed:
                # The plaintext keys also sat in WAL frames until a checkpoint copies them over.
                await self.store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def derive(self, master: bytes, identifier: bytes) -> bytes:
        return _hmac(master, _DERIVE + identifier)

    async def put(self, txn: Txn, identifier: bytes, *, token_id: str, payment_hash: str | None,
                  bounty_id: str | None, capabilities: str, event: str | None = "l402.token_minted") -> bytes:
        """Record a new token in ``txn``; returns its root key (never stored).  ``event``
        None: no event (an unpaid L402 offer; its payment writes one)."""
        await self._seal_legacy_rows(txn)
        root_key = self.derive(self.master(), identifier)
        await txn.insert("l402_root_keys", {
            "key_id": key_id_of(identifier), "root_key": _hmac(root_key, _CHECK), "key_kind": DERIVED,
            "token_id": token_id, "payment_hash": payment_hash, "bounty_id": bounty_id,
            "capabilities": capabilities, "created_at": time.time(),
        })
        if event is not None:
            await txn.event(event, token_id, bounty_id=bounty_id, capabilities=capabilities)
        return root_key

    async def get(self, identifier: bytes, *, fresh: bool = False) -> RootKey | None:
        """The root key and minted scope of a token; None when unknown, revoked, or
        minted under another master (the key file was replaced)."""
        await self.prepare()
        master = self.master()
        key_id = key_id_of(identifier)
        now = time.monotonic()
        hit = None if fresh else self._cache.get(key_id)
        if hit is not None and now - hit[1] < self.ttl_s:
            self._cache.move_to_end(key_id)
            return hit[0]
        row = await self.store.fetchone(
            "SELECT root_key, key_kind, token_id, bounty_id, capabilities, revoked_at FROM l402_root_keys "
            "WHERE key_id = ?", (key_id,))
        found = None
        if row is not None and row["revoked_at"] is None:
            key = self._open(master, identifier, key_id, row)
            if key is not None:
                caps = frozenset(c for c in (row["capabilities"] or "").split(",") if c)
                found = RootKey(key, row["token_id"], row["bounty_id"], caps)
        self._cache[key_id] = (found, now)
        if len(self._cache) > self.max_entries:
            self._cache.popitem(last=False)
        return found

    def _open(self, master: bytes, identifier: bytes, key_id: str, row: dict) -> bytes | None:
        stored = bytes(row["root_key"])
        if row["key_kind"] == DERIVED:
            key = self.derive(master, identifier)
            return key if hmac.compare_digest(_hmac(key, _CHECK), stored) else None
        if row["key_kind"] == SEALED and len(stored) == 32:
            return _xor(stored, _hmac(master, _SEAL + bytes.fromhex(key_id)))
        return None  # an unsealed legacy row here means another process wrote it mid-seal: refuse

    async def readopt(self, identifier: bytes, *, token_id: str, payment_hash: str, bounty_id: str,
                      capabilities: str) -> RootKey | None:
        """The root key of a paid token whose row a lost WAL took, restored, if the start-up
        reconciliation found its invoice paid on the node (an open ``l402_token_lost``
        finding).  The caller has checked the preimage; it must still check the signature
        with the returned key before trusting anything.  None when there is no such finding
        or a row exists (a revoked token stays revoked)."""
        await self.prepare()
        key_id = key_id_of(identifier)
        if await self.store.fetchone("SELECT 1 FROM l402_root_keys WHERE key_id = ?", (key_id,)) is not None:
            return None
        if not await is_lost_paid_token(self.store, payment_hash):
            return None
        key = self.derive(self.master(), identifier)
        return RootKey(key, token_id, bounty_id, frozenset(c for c in capabilities.split(",") if c))

    async def confirm_readopted(self, identifier: bytes, key: RootKey, payment_hash: str) -> None:
        """Write back the row of a re-adopted token (its signature verified) and close the finding."""
        async with self.store.transaction() as txn:
            if await txn.fetchone("SELECT 1 FROM l402_root_keys WHERE key_id = ?", (key_id_of(identifier),)):
                return
            await self.put(txn, identifier, token_id=key.token_id, payment_hash=payment_hash,
                           bounty_id=key.bounty_id, capabilities=",".join(sorted(key.capabilities)),
                           event="l402.token_readopted")
            await token_readopted(txn, payment_hash, key.token_id)
        self._cache.pop(key_id_of(identifier), None)

    async def revoke(self, token_id: str) -> int:
        """Revoke every key of a token (keeps the rows for audit); returns how many."""
        async with self.store.transaction() as txn:
            n = await txn.execute("UPDATE l402_root_keys SET revoked_at = ? WHERE token_id = ? AND revoked_at IS NULL",
                                  (time.time(), token_id))
            if n:
                await txn.event("l402.token_revoked", token_id)
        self._cache.clear()
        return n

    async def _seal_legacy_rows(self, txn: Txn) -> int:
        if self._sealed:
            return 0
        master = self.master()
        legacy = await txn.fetchall("SELECT key_id, root_key FROM l402_root_keys WHERE key_kind IS NULL")
        if legacy:
            # secure_delete overwrites the old content instead of leaving it in free space.
            await txn.execute("PRAGMA secure_delete = ON")
            for row in legacy:
                pad = _hmac(master, _SEAL + bytes.fromhex(row["key_id"]))
                stored = bytes(row["root_key"])
                await txn.execute("UPDATE l402_root_keys SET root_key = ?, key_kind = ? WHERE key_id = ?",
                                  (_xor(stored, pad[:len(stored)]), SEALED, row["key_id"]))
            await txn.execute("PRAGMA secure_delete = OFF")
            await txn.event("l402.root_keys_sealed", None, count=len(legacy))
        # Marked after commit: a rolled-back transaction leaves the rows to seal next time.
        txn.after_commit.append(lambda: setattr(self, "_sealed", True))
        return len(legacy)
