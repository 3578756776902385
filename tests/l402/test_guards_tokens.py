"""Token checks at their edges: the second a token expires, and a validly signed token whose
capabilities reach beyond what was sold with it."""

from __future__ import annotations

import time

import pytest

from l402tui.l402.rootkeys import RootKeyStore
from l402tui.l402.tokens import Credential, TokenAuthority, TokenRefused
from tests.l402.helpers import forge, preimage, stored_root_key


async def test_a_token_is_expired_from_the_second_named_in_its_caveat(store):
    authority = TokenAuthority(RootKeyStore(store))
    pre, phash = preimage()
    until = int(time.time()) + 3600
    async with store.transaction() as txn:
        minted = await authority.mint(txn, phash, "b1", ("download",), until)
    credential = Credential("L402", minted.macaroon_b64, pre)
    token = await authority.verify(credential, capability="download", bounty_id="b1", now=until - 1)
    assert token.valid_until == until and not token.expired(until - 0.001)
    for at in (until, until + 0.5, until + 3600):
        with pytest.raises(TokenRefused) as err:
            await authority.verify(credential, capability="download", bounty_id="b1", now=at)
        assert err.value.reason == "expired", at


async def test_a_signed_token_claiming_more_capabilities_than_were_sold_is_refused(store):
    """Sold for download only; its key leaked and someone signed download,submit with it."""
    keys = RootKeyStore(store)
    authority = TokenAuthority(keys)
    pre, phash = preimage()
    token_id, root_key = await stored_root_key(store, keys, phash, "download")
    scope = ["services=bounties:0", f"bounties_valid_until={int(time.time()) + 3600}", "bounty_id=b1"]
    wider = forge(phash, token_id, root_key, ["bounties_capabilities=download,submit", *scope])
    for kwargs in ({}, {"capability": "submit", "bounty_id": "b1"}, {"capability": "download", "bounty_id": "b1"}):
        with pytest.raises(TokenRefused) as err:
            await authority.verify(Credential("L402", wider, pre), **kwargs)
        assert err.value.reason == "scope_mismatch", kwargs
    sold = forge(phash, token_id, root_key, ["bounties_capabilities=download", *scope])
    token = await authority.verify(Credential("L402", sold, pre), capability="download", bounty_id="b1")
    assert token.capabilities == {"download"}


async def test_an_appended_services_caveat_may_narrow_but_never_widen(store):
    from pymacaroons import Macaroon

    authority = TokenAuthority(RootKeyStore(store))
    pre, phash = preimage()
    async with store.transaction() as txn:
        minted = await authority.mint(txn, phash, "b1", ("download",), int(time.time()) + 3600)
    widened = Macaroon.deserialize(minted.macaroon_b64)
    widened.add_first_party_caveat("services=bounties:0,elsewhere:0")
    with pytest.raises(TokenRefused) as err:
        await authority.verify(Credential("L402", widened.serialize(), pre), capability="download", bounty_id="b1")
    assert err.value.reason == "caveat_not_narrowing"
    moved = Macaroon.deserialize(minted.macaroon_b64)
    moved.add_first_party_caveat("services=")  # narrowed to no service at all
    with pytest.raises(TokenRefused) as err:
        await authority.verify(Credential("L402", moved.serialize(), pre), capability="download", bounty_id="b1")
    assert err.value.reason == "wrong_service"
    same = Macaroon.deserialize(minted.macaroon_b64)
    same.add_first_party_caveat("services=bounties:0")
    assert (await authority.verify(Credential("L402", same.serialize(), pre), bounty_id="b1")).bounty_id == "b1"


async def test_an_appended_bounty_id_naming_another_bounty_is_refused_as_widening(store):
    from pymacaroons import Macaroon

    authority = TokenAuthority(RootKeyStore(store))
    pre, phash = preimage()
    async with store.transaction() as txn:
        minted = await authority.mint(txn, phash, "b1", ("download",), int(time.time()) + 3600)
    other = Macaroon.deserialize(minted.macaroon_b64)
    other.add_first_party_caveat("bounty_id=b2")
    for kwargs in ({}, {"bounty_id": "b2"}, {"bounty_id": "b1"}):
        with pytest.raises(TokenRefused) as err:
            await authority.verify(Credential("L402", other.serialize(), pre), **kwargs)
        assert err.value.reason == "caveat_not_narrowing", kwargs
    again = Macaroon.deserialize(minted.macaroon_b64)
    again.add_first_party_caveat("bounty_id=b1")
    assert (await authority.verify(Credential("L402", again.serialize(), pre), bounty_id="b1")).bounty_id == "b1"
