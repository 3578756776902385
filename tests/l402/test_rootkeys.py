"""Root keys at rest: the database alone can never sign a token; older databases keep their tokens."""

from __future__ import annotations

import hashlib
import os
import secrets
import sqlite3
import stat
import time

import pytest
from pymacaroons import MACAROON_V2, Macaroon

from l402tui.l402.codec import to_std_b64
from l402tui.l402.rootkeys import MASTER_FILE, MasterKeyError, RootKeyStore
from l402tui.l402.tokens import Credential, TokenAuthority, TokenRefused, encode_identifier
from l402tui.store import Store
from tests.l402.helpers import forge, preimage, stored_root_key, token_row

SCOPE = ["services=bounties:0", "bounties_capabilities=download,submit"]


async def _mint(store, authority, bounty="b1"):
    pre, phash = preimage()
    async with store.transaction() as txn:
        minted = await authority.mint(txn, phash, bounty, ("download", "submit"), int(time.time() + 3600))
    return minted, pre


def _full_scope(bounty: str) -> list[str]:
    return SCOPE + [f"bounties_valid_until={int(time.time()) + 3600}", f"bounty_id={bounty}"]


async def test_master_file_is_private_whatever_the_umask(tmp_path):
    old = os.umask(0)
    try:
        s = await Store.open(tmp_path / "d" / "db.sqlite")
        try:
            await RootKeyStore(s).prepare()
        finally:
            await s.close()
    finally:
        os.umask(old)
    mode = stat.S_IMODE((tmp_path / "d" / MASTER_FILE).stat().st_mode)
    assert mode == 0o600


async def test_a_readable_master_file_is_refused_with_the_fix(store):
    keys = RootKeyStore(store)
    await keys.prepare()
    os.chmod(keys.master_path, 0o644)
    with pytest.raises(MasterKeyError) as err:
        await RootKeyStore(store).prepare()
    assert f"chmod 600 {keys.master_path}" in str(err.value)
    keys.master_path.write_text("not hex\n")
    os.chmod(keys.master_path, 0o600)
    with pytest.raises(MasterKeyError, match="damaged"):
        await RootKeyStore(store).prepare()


async def test_what_the_database_holds_cannot_sign_a_token(store):
    authority = TokenAuthority(RootKeyStore(store))
    minted, pre = await _mint(store, authority)
    row = token_row(store.path, minted.payment_hash)
    assert row["key_kind"] == "derived" and row["bounty_id"] == "b1"
    for caveats in ([], _full_scope("b1"), _full_scope("b2")):
        fake = forge(row["payment_hash"], row["token_id"], bytes(row["root_key"]), caveats)
        with pytest.raises(TokenRefused) as err:
            await authority.verify(Credential("L402", fake, pre), capability="download", bounty_id="b1")
        assert err.value.reason == "bad_signature", caveats
    # The real token still works.
    await authority.verify(Credential("L402", minted.macaroon_b64, pre), capability="download", bounty_id="b1")


async def test_a_validly_signed_token_without_caveats_opens_nothing(store):
    """Even with the true root key (a token minted by a buggy or older build), no scope means no access."""
    keys = RootKeyStore(store)
    authority = TokenAuthority(keys)
    pre, phash = preimage()
    token_id, root_key = await stored_root_key(store, keys, phash, "download,submit")
    for caveats in ([], SCOPE, SCOPE + ["bounty_id=b1"], _full_scope("b1")[:3]):
        bare = forge(phash, token_id, root_key, caveats)
        for kwargs in ({}, {"capability": "download", "bounty_id": "b1"}):
            with pytest.raises(TokenRefused) as err:
                await authority.verify(Credential("L402", bare, pre), **kwargs)
            assert err.value.reason == "unscoped", (caveats, kwargs)
    # A token whose caveats name another bounty than it was sold for (its key leaked) is refused too.
    other = forge(phash, token_id, root_key, _full_scope("b2"))
    with pytest.raises(TokenRefused) as err:
        await authority.verify(Credential("L402", other, pre))
    assert err.value.reason == "scope_mismatch"
    scoped = forge(phash, token_id, root_key, _full_scope("b1"))
    assert (await authority.verify(Credential("L402", scoped, pre), bounty_id="b1")).bounty_id == "b1"


async def test_tokens_of_an_older_database_keep_working_and_their_keys_are_sealed(store):
    """Rows written before migration 5 held the random root key in the clear."""
    pre, phash = preimage()
    token_id = secrets.token_bytes(32)
    identifier = encode_identifier(bytes.fromhex(phash), token_id)
    legacy_key = secrets.token_bytes(32)
    async with store.transaction() as txn:
        await txn.insert("l402_root_keys", {
            "key_id": hashlib.sha256(identifier).hexdigest(), "root_key": legacy_key, "token_id": token_id.hex(),
            "payment_hash": phash, "bounty_id": "b1", "capabilities": "download", "created_at": time.time()})
    mac = Macaroon(location="l402tui", identifier=identifier, key=legacy_key.hex(), version=MACAROON_V2)
    for caveat in ["services=bounties:0", "bounties_capabilities=download",
                   f"bounties_valid_until={int(time.time()) + 3600}", "bounty_id=b1"]:
        mac.add_first_party_caveat(caveat)
    old_token = to_std_b64(mac.serialize())

    authority = TokenAuthority(RootKeyStore(store))
    token = await authority.verify(Credential("L402", old_token, pre), capability="download", bounty_id="b1")
    assert token.token_id == token_id.hex()
    row = token_row(store.path, phash)
    assert row["key_kind"] == "sealed" and bytes(row["root_key"]) != legacy_key
    # The sealed bytes are no key: a macaroon signed with them is refused.
    fake = forge(phash, token_id.hex(), bytes(row["root_key"]), _full_scope("b1"))
    with pytest.raises(TokenRefused) as err:
        await authority.verify(Credential("L402", fake, pre))
    assert err.value.reason == "bad_signature"
    # The plaintext key is gone from the database file and its WAL.
    await store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for path in (store.path, store.path.with_name(store.path.name + "-wal")):
        if path.exists():
            assert legacy_key not in path.read_bytes(), path
    # After a restart (a fresh key store on the same files) the old token still works.
    again = TokenAuthority(RootKeyStore(store))
    await again.verify(Credential("L402", old_token, pre), capability="download", bounty_id="b1")


async def test_a_replaced_master_file_invalidates_tokens_instead_of_guessing(store):
    keys = RootKeyStore(store)
    authority = TokenAuthority(keys)
    minted, pre = await _mint(store, authority)
    keys.master_path.unlink()  # lost: a new master is made, and old tokens cannot be checked against it
    with pytest.raises(TokenRefused) as err:
        await TokenAuthority(RootKeyStore(store)).verify(Credential("L402", minted.macaroon_b64, pre))
    assert err.value.reason == "revoked"


def test_the_master_never_enters_the_database(tmp_path):
    """Schema check by reading the file as an attacker would: no column holds the master."""
    import asyncio

    async def run():
        s = await Store.open(tmp_path / "db.sqlite")
        try:
            keys = RootKeyStore(s)
            await _mint(s, TokenAuthority(keys))
            return keys.master()
        finally:
            await s.close()

    master = asyncio.run(run())
    conn = sqlite3.connect(tmp_path / "db.sqlite")
    try:
        dumped = "\n".join(conn.iterdump()).encode()
    finally:
        conn.close()
    assert master.hex().encode() not in dumped and master not in dumped


async def test_a_linked_master_file_is_refused(store, tmp_path):
    keys = RootKeyStore(store)
    await keys.prepare()
    elsewhere = tmp_path / "elsewhere.key"
    elsewhere.write_text(keys.master().hex())
    os.chmod(elsewhere, 0o600)
    keys.master_path.unlink()
    keys.master_path.symlink_to(elsewhere)
    with pytest.raises(MasterKeyError, match="not a link"):
        await RootKeyStore(store).prepare()
