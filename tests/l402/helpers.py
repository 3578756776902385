"""Shared steps of the L402 HTTP tests: open bounties, buy tokens, forge macaroons an attacker could."""

from __future__ import annotations

import hashlib
import os
import re
import secrets

import aiohttp
from pymacaroons import MACAROON_V2, Macaroon

from l402tui.l402.codec import to_std_b64
from l402tui.l402.rootkeys import RootKeyStore
from l402tui.l402.tokens import encode_identifier
from tests.coordinator.conftest import url

_PARAMS = re.compile(r'(\w+)="([^"]*)"')


async def open_bounty(coordinator, folder) -> tuple[str, str]:
    bounty = (await coordinator.create_bounty(folder, self_funded=True))["bounty"]
    return bounty["id"], bounty["package"]["sha256"]


async def buy(session: aiohttp.ClientSession, srv, net, path: str, method: str = "GET",
              **kw) -> tuple[str, str]:
    """Answer a route's 402 by paying from agent-1; returns (macaroon, preimage)."""
    async with session.request(method, url(srv, path), **kw) as r:
        assert r.status == 402, await r.text()
        body = await r.json()
    payment = await net.node("agent-1").pay(body["invoice"])
    return body["macaroon"], payment.preimage


def challenge_of(headers) -> dict[str, str]:
    """The parameters of the L402 challenge among WWW-Authenticate values (empty if none)."""
    for value in headers.getall("WWW-Authenticate", []):
        if value.upper().startswith("L402 "):
            return dict(_PARAMS.findall(value))
    return {}


def forge(payment_hash: str, token_id: str, key: bytes, caveats: list[str]) -> str:
    """A V2 macaroon for an existing token's identifier, signed with ``key``."""
    identifier = encode_identifier(bytes.fromhex(payment_hash), bytes.fromhex(token_id))
    mac = Macaroon(location="l402tui", identifier=identifier, key=key.hex(), version=MACAROON_V2)
    for caveat in caveats:
        mac.add_first_party_caveat(caveat)
    return to_std_b64(mac.serialize())


def token_row(store_path, payment_hash: str) -> dict:
    """What an attacker who can read the database sees of a token (a separate sqlite3 reader)."""
    import sqlite3

    conn = sqlite3.connect(store_path)
    conn.row_factory = sqlite3.Row
    try:
        row = conn.execute("SELECT * FROM l402_root_keys WHERE payment_hash = ?", (payment_hash,)).fetchone()
        return dict(row)
    finally:
        conn.close()


def preimage() -> tuple[str, str]:
    """A fresh (preimage, payment hash), both hex."""
    pre = os.urandom(32)
    return pre.hex(), hashlib.sha256(pre).hexdigest()


async def stored_root_key(store, keys: RootKeyStore, payment_hash: str, capabilities: str,
                          bounty_id: str = "b1") -> tuple[str, bytes]:
    """A token's root key stored as a sale of ``capabilities`` would; returns (token id hex, root key)."""
    token_id = secrets.token_bytes(32)
    identifier = encode_identifier(bytes.fromhex(payment_hash), token_id)
    async with store.transaction() as txn:
        root_key = await keys.put(txn, identifier, token_id=token_id.hex(), payment_hash=payment_hash,
                                  bounty_id=bounty_id, capabilities=capabilities)
    return token_id.hex(), root_key
