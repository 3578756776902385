"""Re-adopting a paid token whose store rows a lost WAL took: only a token that names its
bounty and at least one capability is re-adopted, so its holder cannot narrow it to nothing
first and have that empty scope written back as what was sold."""

from __future__ import annotations

import hashlib
import os
import time

import pytest

from l402tui.l402.codec import decode_macaroon, to_std_b64
from l402tui.l402.rootkeys import RootKeyStore
from l402tui.l402.tokens import Credential, TokenAuthority, TokenRefused


async def test_a_lost_token_narrowed_to_no_capability_is_not_readopted(store):
    pre = os.urandom(32)
    phash = hashlib.sha256(pre).hexdigest()
    async with store.transaction() as txn:
        minted = await TokenAuthority(RootKeyStore(store)).mint(txn, phash, "b1", ("download",),
                                                                int(time.time()) + 3600)
    async with store.transaction() as txn:  # a lost WAL took its rows; the start-up check found it paid
        await txn.execute("DELETE FROM l402_root_keys WHERE payment_hash = ?", (phash,))
        await txn.execute("INSERT INTO store_findings (kind, payment_hash, message, found_at) "
                          "VALUES ('l402_token_lost', ?, 'a paid token lost its rows', ?)", (phash, time.time()))
    authority = TokenAuthority(RootKeyStore(store))  # nothing cached
    emptied = decode_macaroon(minted.macaroon_b64)
    emptied.add_first_party_caveat("bounties_capabilities=")  # a caveat may only narrow: to nothing
    with pytest.raises(TokenRefused) as err:
        await authority.verify(Credential("L402", to_std_b64(emptied.serialize()), pre.hex()))
    assert err.value.reason == "revoked"
    assert await store.scalar("SELECT COUNT(*) FROM l402_root_keys WHERE payment_hash = ?", (phash,)) == 0
    # The token as sold is still re-adopted with the capability paid for.
    token = await authority.verify(Credential("L402", minted.macaroon_b64, pre.hex()),
                                   capability="download", bounty_id="b1")
    assert token.capabilities == frozenset({"download"})
    assert await store.scalar("SELECT capabilities FROM l402_root_keys WHERE payment_hash = ?", (phash,)) == "download"
