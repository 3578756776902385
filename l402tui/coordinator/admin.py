"""The admin macaroon: what `l402tui serve` writes (0600) and the TUI's --attach sends.

A macaroon, like the L402 tokens, with its root key in ``l402_root_keys`` (so
deleting that row, or the file plus a restart, rotates it) and one caveat,
``role=admin``.  Sent as ``Authorization: Bearer <base64>``.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import time
from pathlib import Path

from pymacaroons import MACAROON_V2, Macaroon, Verifier
from pymacaroons.exceptions import MacaroonException

from l402tui.l402.tokens import to_std_b64
from l402tui.store import Store

ADMIN_FILE = "admin.macaroon"
_PREFIX = b"l402tui-admin-v1:"


class AdminRefused(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


async def ensure_admin_macaroon(store: Store, data_dir: Path) -> Path:
    """Write ``<data_dir>/admin.macaroon`` (mode 0600) unless a valid one is there."""
    path = data_dir / ADMIN_FILE
    if path.is_file():
        try:
            await AdminAuth(store).verify_text(path.read_text().strip())
            os.chmod(path, 0o600)
            return path
        except AdminRefused:
            pass  # stale (database replaced): mint a new one
    identifier = _PREFIX + secrets.token_hex(16).encode()
    root_key = secrets.token_bytes(32)
    async with store.transaction() as txn:
        await txn.insert("l402_root_keys", {
            "key_id": hashlib.sha256(identifier).hexdigest(), "root_key": root_key, "token_id": "admin",
            "capabilities": "admin", "created_at": time.time()})
        await txn.event("admin.macaroon_created", None, path=str(path))
    mac = Macaroon(location="l402tui", identifier=identifier, key=root_key.hex(), version=MACAROON_V2)
    mac.add_first_party_caveat("role=admin")
    text = to_std_b64(mac.serialize())
    data_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text + "\n")
    os.replace(tmp, path)
    return path


class AdminAuth:
    def __init__(self, store: Store):
        self.store = store
        self._ok: set[str] = set()

    async def verify_header(self, header: str | None) -> None:
        if not header:
            raise AdminRefused("admin routes need 'Authorization: Bearer <contents of admin.macaroon>'")
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() not in ("bearer", "macaroon") or not value.strip():
            raise AdminRefused("admin routes need 'Authorization: Bearer <contents of admin.macaroon>'")
        await self.verify_text(value.strip())

    async def verify_text(self, text: str) -> None:
        if text in self._ok:
            return
        try:
            mac = Macaroon.deserialize(text)
        except Exception:  # noqa: BLE001 - pymacaroons raises many kinds for garbage
            raise AdminRefused("the admin macaroon cannot be decoded; copy admin.macaroon exactly") from None
        identifier = mac.identifier_bytes
        if not identifier.startswith(_PREFIX):
            raise AdminRefused("this is not an admin macaroon (an L402 token cannot be used for admin routes)")
        row = await self.store.fetchone("SELECT root_key, revoked_at FROM l402_root_keys WHERE key_id = ?",
                                        (hashlib.sha256(identifier).hexdigest(),))
        if row is None or row["revoked_at"] is not None:
            raise AdminRefused("this admin macaroon is not (or no longer) valid for this coordinator; "
                               "use the admin.macaroon in its data dir")
        verifier = Verifier()
        verifier.satisfy_exact("role=admin")
        try:
            verifier.verify(mac, bytes(row["root_key"]).hex())
        except MacaroonException:
            raise AdminRefused("the admin macaroon signature does not match: it was altered") from None
        self._ok.add(text)
