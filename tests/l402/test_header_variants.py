"""Each shape of Authorization header gets the status the L402 spec (and Aperture) give it.

402 + a fresh challenge: no credential, or a well-formed one that cannot open this route.
401: a header that cannot be read (a list of macaroons, junk after the preimage or the macaroon).
"""

from __future__ import annotations

import base64
import time

import aiohttp
import pytest
from multidict import CIMultiDict
from pymacaroons import Macaroon

from tests.coordinator.conftest import make_bounty, url
from tests.l402.helpers import buy, challenge_of, open_bounty


def _variants(mac: str, pre: str, other_mac: str, other_pre: str) -> list[tuple[str, list[str], int, str | None]]:
    """(name, Authorization values, status, reason) for the package route of bounty A."""
    raw = base64.b64decode(mac)
    expired = Macaroon.deserialize(mac)
    expired.add_first_party_caveat(f"bounties_valid_until={int(time.time()) - 1}")
    return [
        ("no header", [], 402, None),
        ("another scheme", ["Bearer abc"], 402, None),
        ("L402", [f"L402 {mac}:{pre}"], 200, None),
        ("lower-case l402", [f"l402 {mac}:{pre}"], 200, None),
        ("LSAT", [f"LSAT {mac}:{pre}"], 200, None),
        ("lower-case lsat", [f"lsat {mac}:{pre}"], 200, None),
        ("mixed-case Lsat", [f"Lsat {mac}:{pre}"], 200, None),
        ("upper-case hex preimage", [f"L402 {mac}:{pre.upper()}"], 200, None),
        ("URL-safe unpadded macaroon", [f"L402 {base64.urlsafe_b64encode(raw).decode().rstrip('=')}:{pre}"],
         200, None),
        ("macaroon without preimage", [f"L402 {mac}"], 402, "missing_preimage"),
        ("macaroon and empty preimage", [f"L402 {mac}:"], 402, "missing_preimage"),
        ("wrong preimage", [f"L402 {mac}:{'00' * 32}"], 402, "wrong_preimage"),
        ("token of another bounty", [f"L402 {other_mac}:{other_pre}"], 402, "wrong_bounty"),
        ("expired by an appended caveat", [f"L402 {expired.serialize()}:{pre}"], 402, "expired"),
        ("junk after the preimage", [f"L402 {mac}:{pre}junk"], 401, "malformed"),
        ("a second preimage", [f"L402 {mac}:{pre}:{pre}"], 401, "malformed"),
        ("text after a space", [f"L402 {mac}:{pre} extra"], 401, "malformed"),
        ("preimage one byte long", [f"L402 {mac}:{pre}00"], 401, "malformed"),
        ("base64 preimage", [f"L402 {mac}:{base64.b64encode(bytes.fromhex(pre)).decode()}"], 401, "malformed"),
        ("list of macaroons", [f"L402 {mac},{other_mac}:{pre}"], 401, "malformed"),
        ("list of the same macaroon", [f"L402 {mac},{mac}:{pre}"], 401, "malformed"),
        ("base64 junk after the macaroon", [f"L402 {mac.rstrip('=')}AAAA:{pre}"], 401, "malformed"),
        ("bytes after the macaroon", [f"L402 {base64.b64encode(raw + b'xyz').decode()}:{pre}"], 401, "malformed"),
        ("not base64", [f"L402 m@c!:{pre}"], 401, "malformed"),
        ("not a macaroon", [f"L402 {base64.b64encode(b'hello world').decode()}:{pre}"], 401, "malformed"),
        ("nothing after the scheme", ["L402"], 401, "malformed"),
        ("two Authorization headers", [f"L402 {mac}:{pre}", f"L402 {other_mac}:{other_pre}"], 401, "malformed"),
    ]


@pytest.fixture
async def paid(server, coordinator, bounty_dir, tmp_path, net):
    bounty_a, _ = await open_bounty(coordinator, bounty_dir)
    bounty_b, _ = await open_bounty(coordinator, make_bounty(tmp_path / "other"))
    async with aiohttp.ClientSession() as session:
        mac, pre = await buy(session, server, net, f"/api/v1/bounties/{bounty_a}/package")
        other_mac, other_pre = await buy(session, server, net, f"/api/v1/bounties/{bounty_b}/package")
    return bounty_a, mac, pre, other_mac, other_pre


async def test_each_header_variant_gets_the_spec_status(server, paid):
    bounty_a, mac, pre, other_mac, other_pre = paid
    path = url(server, f"/api/v1/bounties/{bounty_a}/package")
    seen = []
    async with aiohttp.ClientSession() as session:
        for name, values, status, reason in _variants(mac, pre, other_mac, other_pre):
            headers = CIMultiDict(("Authorization", v) for v in values)
            async with session.get(path, headers=headers) as r:
                body = await r.read()
                where = (name, r.status, body[:300])
                assert r.status == status, where
                if status == 402:
                    challenge = challenge_of(r.headers)
                    # A fresh token and invoice, never the one presented.
                    assert challenge["macaroon"] and challenge["invoice"].startswith("ln"), where
                    assert challenge["macaroon"] not in (mac, other_mac), where
                    seen.append(challenge["macaroon"])
                    assert (await r.json()).get("reason") == reason, where
                elif status == 401:
                    assert not challenge_of(r.headers).get("invoice"), where
                    got = await r.json()
                    assert got["reason"] == reason and got["message"], where
    assert len(seen) == len(set(seen))  # every challenge was a new token


async def test_a_token_this_route_cannot_take_gets_a_fresh_challenge(server, paid):
    """Wrong capability (a download token on the submit route) and a revoked token: 402 with
    a new token and invoice for this route, the reason named, as for a wrong bounty."""
    from l402tui.coordinator.client import HttpCoordinatorClient
    from l402tui.l402.codec import decode_macaroon
    from l402tui.l402.tokens import decode_identifier
    from tests.coordinator.conftest import diff_text

    bounty_a, mac, pre, _, _ = paid
    auth = {"Authorization": f"L402 {mac}:{pre}"}
    submit = url(server, f"/api/v1/bounties/{bounty_a}/submissions")
    package = url(server, f"/api/v1/bounties/{bounty_a}/package")
    async with aiohttp.ClientSession() as session:
        async with session.post(submit, json={"diff": diff_text(), "claimed_score": 0.0}, headers=auth) as r:
            assert r.status == 402, await r.text()
            body = await r.json()
            assert body["reason"] == "missing_capability" and body["capabilities"] == ["submit"]
            assert challenge_of(r.headers)["macaroon"] not in ("", mac) and body["invoice"].startswith("ln")

        _, token_id = decode_identifier(decode_macaroon(mac).identifier)
        async with HttpCoordinatorClient(str(server.make_url("")), admin_macaroon=server.admin_token) as admin:
            assert await admin.revoke_token(token_id.hex()) == 1
        async with session.get(package, headers=auth) as r:
            assert r.status == 402, await r.text()
            body = await r.json()
            assert body["reason"] == "revoked" and challenge_of(r.headers)["macaroon"] not in ("", mac)
