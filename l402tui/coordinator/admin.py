"""The admin macaroon: what `l402tui serve` writes (0600) and the TUI's --attach sends.

A macaroon, like the L402 tokens, whose root key is derived from the master key
file (l402/rootkeys.py), with a row in ``l402_root_keys`` (token id ``admin``) and
one caveat, ``role=admin``.  Sent as ``Authorization: Bearer <base64>``.  Deleting
the file and restarting rotates it: the new one retires every earlier copy.

Revoking it (``POST /api/v1/admin/tokens/admin/revoke``, or marking the row) takes
effect on the next request: the row is read on every admin request, only the
signature check is cached.  The text must be exactly the macaroon, nothing appended.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from pathlib import Path

from pymacaroons import MACAROON_V2, Macaroon, Verifier
from pymacaroons.exceptions import MacaroonException

from l402tui.l402.codec import TokenRefused, decode_macaroon, to_std_b64
from l402tui.l402.rootkeys import RootKeyStore
from l402tui.store import Store

ADMIN_FILE = "admin.macaroon"
ADMIN_TOKEN_ID = "admin"
_PREFIX = b"l402tui-admin-v1:"
_USAGE = "admin routes need 'Authorization: Bearer <contents of admin.macaroon>'"


class AdminRefused(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


async def ensure_admin_macaroon(store: Store, data_dir: Path, keys: RootKeyStore | None = None) -> Path:
    """Write ``<data_dir>/admin.macaroon`` (mode 0600) unless a valid one is there.

    Also loads the master key and seals root keys stored in the clear by older
    versions, so a bad key file stops ``serve`` at start with its fix."""
    keys = keys or RootKeyStore(store)
    await keys.prepare()
    path = data_dir / ADMIN_FILE
    if path.is_file():
        try:
            await AdminAuth(store, keys).verify_text(path.read_text().strip())
            os.chmod(path, 0o600)
            return path
        except AdminRefused:
            pass  # stale (database or master key replaced, or revoked): mint a new one
    identifier = _PREFIX + secrets.token_hex(16).encode()
    async with store.transaction() as txn:
        # One admin macaroon at a time: a new one (the file was deleted, replaced or revoked)
        # retires every earlier copy, wherever it was copied to.
        await txn.execute("UPDATE l402_root_keys SET revoked_at = ? WHERE token_id = ? AND revoked_at IS NULL",
                          (time.time(), ADMIN_TOKEN_ID))
        root_key = await keys.put(txn, identifier, token_id=ADMIN_TOKEN_ID, payment_hash=None, bounty_id=None,
                                  capabilities="admin", event="admin.macaroon_created")
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
    def __init__(self, store: Store, keys: RootKeyStore | None = None):
        self.store = store
        self.keys = keys or RootKeyStore(store)
        # Texts whose signature was checked, with their identifier: a repeat skips the
        # HMAC chain but never the revocation read.
        self._signed: dict[str, bytes] = {}
        # Identifier -> when its row was last read and found unrevoked, for callers that
        # accept an answer that old (open event streams): a thousand streams re-checking
        # each second are one read a second, not a thousand.
        self._fresh: dict[bytes, float] = {}
        self._reading: dict[bytes, asyncio.Lock] = {}

    async def verify_header(self, header: str | None, *, max_age_s: float = 0.0) -> None:
        """Refuse (AdminRefused) anything but the valid, unrevoked admin macaroon.  With
        ``max_age_s``, a revocation read that recent (by any caller) is enough."""
        if not header:
            raise AdminRefused(_USAGE)
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() not in ("bearer", "macaroon") or not value.strip():
            raise AdminRefused(_USAGE)
        await self.verify_text(value.strip(), max_age_s=max_age_s)

    async def verify_text(self, text: str, *, max_age_s: float = 0.0) -> None:
        identifier = self._signed.get(text)
        if identifier is not None:
            if max_age_s <= 0:
                await self._still_valid(text, identifier)
                return
            if time.monotonic() - self._fresh.get(identifier, float("-inf")) < max_age_s:
                return
            lock = self._reading.setdefault(identifier, asyncio.Lock())
            async with lock:  # one read for every caller that arrives while it runs
                if time.monotonic() - self._fresh.get(identifier, float("-inf")) >= max_age_s:
                    await self._still_valid(text, identifier)
            if identifier not in self._fresh:
                raise AdminRefused("this admin macaroon was revoked; use the admin.macaroon that "
                                   "`l402tui serve` wrote at its last start")
            return
        try:
            mac = decode_macaroon(text)
        except TokenRefused:
            raise AdminRefused("the admin macaroon cannot be decoded, or has something appended; "
                               "copy admin.macaroon exactly") from None
        identifier = mac.identifier_bytes
        if not identifier.startswith(_PREFIX):
            raise AdminRefused("this is not an admin macaroon (an L402 token cannot be used for admin routes)")
        minted = await self.keys.get(identifier, fresh=True)
        if minted is None or minted.token_id != ADMIN_TOKEN_ID:
            raise AdminRefused("this admin macaroon is not (or no longer) valid for this coordinator; "
                               "use the admin.macaroon in its data dir")
        verifier = Verifier()
        verifier.satisfy_exact("role=admin")
        try:
            verifier.verify(mac, minted.key.hex())
        except MacaroonException:
            raise AdminRefused("the admin macaroon signature does not match: it was altered") from None
        if len(self._signed) > 1000:
            self._signed.clear()
            self._fresh.clear()
            self._reading.clear()
        self._signed[text] = identifier
        self._fresh[identifier] = time.monotonic()

    async def _still_valid(self, text: str, identifier: bytes) -> None:
        started = time.monotonic()
        if await self.keys.get(identifier, fresh=True) is None:
            self._signed.pop(text, None)
            self._fresh.pop(identifier, None)
            raise AdminRefused("this admin macaroon was revoked; use the admin.macaroon that "
                               "`l402tui serve` wrote at its last start")
        self._fresh[identifier] = started
