"""Minting and verifying L402 tokens against a real SQLite store."""

from __future__ import annotations

import asyncio
import base64
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pymacaroons import Macaroon

from l402tui.l402.tokens import (
    Credential, RootKeyStore, TokenAuthority, TokenRefused, decode_identifier, macaroon_caveats,
    parse_authorization,
)
from l402tui.store import Store
from tests.l402.helpers import preimage


async def _mint(store, authority, bounty="b1", caps=("download",), valid_for=3600):
    pre, phash = preimage()
    async with store.transaction() as txn:
        minted = await authority.mint(txn, phash, bounty, caps, int(time.time() + valid_for))
    return minted, pre


async def test_minted_token_verifies_and_has_spec_layout(store):
    authority = TokenAuthority(RootKeyStore(store))
    minted, pre = await _mint(store, authority)
    raw = base64.b64decode(minted.macaroon_b64)
    assert raw[0] == 0x02  # macaroon V2 binary
    mac = Macaroon.deserialize(minted.macaroon_b64)
    phash, token_id = decode_identifier(mac.identifier_bytes)
    assert mac.identifier_bytes[:2] == b"\x00\x00"
    assert phash.hex() == minted.payment_hash and token_id.hex() == minted.token_id
    caveats = macaroon_caveats(minted.macaroon_b64)
    assert caveats[0] == "services=bounties:0"
    assert caveats[1] == "bounties_capabilities=download"
    assert caveats[3] == "bounty_id=b1"
    token = await authority.verify(Credential("L402", minted.macaroon_b64, pre), capability="download",
                                   bounty_id="b1")
    assert token.token_id == minted.token_id and token.capabilities == {"download"}


async def test_refusals_name_the_failed_check(store):
    authority = TokenAuthority(RootKeyStore(store))
    minted, pre = await _mint(store, authority, valid_for=60)
    cred = Credential("L402", minted.macaroon_b64, pre)
    cases = [
        (Credential("L402", minted.macaroon_b64, "00" * 32), {}, "wrong_preimage"),
        (cred, {"bounty_id": "other"}, "wrong_bounty"),
        (cred, {"capability": "submit"}, "missing_capability"),
        (cred, {"now": time.time() + 120}, "expired"),
        (Credential("L402", "AAAA", pre), {}, "malformed"),
    ]
    for credential, kwargs, reason in cases:
        with pytest.raises(TokenRefused) as err:
            await authority.verify(credential, **kwargs)
        assert err.value.reason == reason, (kwargs, err.value.message)


async def test_tampered_caveat_fails_signature(store):
    authority = TokenAuthority(RootKeyStore(store))
    minted, pre = await _mint(store, authority)
    raw = base64.b64decode(minted.macaroon_b64)
    forged = raw.replace(b"bounty_id=b1", b"bounty_id=b2")  # same length: still parses
    assert forged != raw
    with pytest.raises(TokenRefused) as err:
        await authority.verify(Credential("L402", base64.b64encode(forged).decode(), pre))
    assert err.value.reason == "bad_signature"


async def test_appended_caveats_must_narrow(store):
    authority = TokenAuthority(RootKeyStore(store))
    minted, pre = await _mint(store, authority, caps=("download", "submit"))
    mac = Macaroon.deserialize(minted.macaroon_b64)
    narrowed = mac.copy()
    narrowed.add_first_party_caveat("bounties_capabilities=download")
    narrowed.add_first_party_caveat("some_other_service_thing=1")  # unknown: skipped
    token = await authority.verify(Credential("L402", narrowed.serialize(), pre))
    assert token.capabilities == {"download"}
    widened = Macaroon.deserialize(minted.macaroon_b64)
    widened.add_first_party_caveat(f"bounties_valid_until={int(time.time()) + 10**8}")
    with pytest.raises(TokenRefused) as err:
        await authority.verify(Credential("L402", widened.serialize(), pre))
    assert err.value.reason == "caveat_not_narrowing"


async def test_revoked_and_restart(store, tmp_path):
    authority = TokenAuthority(RootKeyStore(store))
    minted, pre = await _mint(store, authority)
    other, other_pre = await _mint(store, authority)
    cred = Credential("L402", minted.macaroon_b64, pre)
    await authority.verify(cred)
    # A fresh authority on a fresh connection (a restart) still accepts the token.
    store2 = await Store.open(tmp_path / "data" / "db.sqlite")  # the store fixture's database
    try:
        again = TokenAuthority(RootKeyStore(store2))
        assert (await again.verify(cred)).token_id == minted.token_id
        assert await again.revoke(minted.token_id) == 1
        with pytest.raises(TokenRefused) as err:
            await again.verify(cred)
        assert err.value.reason == "revoked"
        await again.verify(Credential("L402", other.macaroon_b64, other_pre))
    finally:
        await store2.close()
    # Deleting the root key row revokes too (for a verifier that has not cached it).
    await store.conn.execute("DELETE FROM l402_root_keys WHERE token_id = ?", (other.token_id,))
    fresh = TokenAuthority(RootKeyStore(store))
    with pytest.raises(TokenRefused) as err:
        await fresh.verify(Credential("L402", other.macaroon_b64, other_pre))
    assert err.value.reason == "revoked"


def test_parse_authorization_schemes():
    pre = "ab" * 32
    assert parse_authorization(f"L402 AgEB+/x=:{pre}") == Credential("L402", "AgEB+/x=", pre)
    assert parse_authorization(f"LSAT abc:{pre.upper()}").scheme == "LSAT"
    assert parse_authorization("Bearer xyz") is None
    assert parse_authorization(None) is None
    with pytest.raises(TokenRefused) as err:
        parse_authorization("L402 abc:nothex")
    assert err.value.reason == "malformed"


async def test_revocation_by_another_process_takes_effect_after_the_cache_ttl(store, tmp_path):
    authority = TokenAuthority(RootKeyStore(store, ttl_s=0.2))
    minted, pre = await _mint(store, authority)
    cred = Credential("L402", minted.macaroon_b64, pre)
    await authority.verify(cred)
    other = await Store.open(tmp_path / "data" / "db.sqlite")  # the store fixture's database  # e.g. an operator's script
    try:
        await TokenAuthority(RootKeyStore(other)).revoke(minted.token_id)
    finally:
        await other.close()
    await authority.verify(cred)  # still cached
    await asyncio.sleep(0.3)
    with pytest.raises(TokenRefused) as err:
        await authority.verify(cred)
    assert err.value.reason == "revoked"


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sets(st.sampled_from(["download", "submit"])), min_size=1, max_size=4))
def test_appended_capability_caveats_never_widen(appended):
    """However caveats are appended, the token grants the last set only if each step narrowed."""
    from l402tui.l402.tokens import encode_identifier, read_caveats

    mac = Macaroon(location="t", identifier=encode_identifier(b"\1" * 32, b"\2" * 32), key="k" * 64,
                   version=2)
    mac.add_first_party_caveat("bounties_capabilities=download,submit")
    allowed = {"download", "submit"}
    narrowing = True
    for caps in appended:
        mac.add_first_party_caveat("bounties_capabilities=" + ",".join(sorted(caps)))
        narrowing = narrowing and caps <= allowed
        allowed = caps if narrowing else allowed
    if narrowing:
        assert read_caveats(mac).capabilities == appended[-1]
    else:
        with pytest.raises(TokenRefused) as err:
            read_caveats(mac)
        assert err.value.reason == "caveat_not_narrowing"
