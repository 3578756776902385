"""The L402-gated API over a real loopback socket, paid through a simulated agent wallet."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import re
import tarfile
import time

import aiohttp
import pytest
from pymacaroons import Macaroon

from l402tui.l402.client import L402Client, SpendingCapExceeded, parse_challenge
from tests.coordinator.conftest import diff_text, make_bounty, url


async def _open_bounty(coordinator, folder):
    return (await coordinator.create_bounty(folder, self_funded=True))["bounty"]["id"]


async def _buy(session, srv, net, path, method="GET", **kw):
    """Get a 402 for ``path``, pay it from agent-1, return (macaroon, preimage, response headers)."""
    async with session.request(method, url(srv, path), **kw) as r:
        assert r.status == 402, await r.text()
        challenges = r.headers.getall("WWW-Authenticate")
        body = await r.json()
    payment = await net.node("agent-1").pay(body["invoice"])
    return body["macaroon"], payment.preimage, challenges


async def test_free_list_then_pay_download_submit_status(server, coordinator, bounty_dir, net):
    bounty_id = await _open_bounty(coordinator, bounty_dir)
    agent = net.node("agent-1")
    before = (await agent.status()).balance_msat
    async with aiohttp.ClientSession() as session:
        async with session.get(url(server, "/api/v1/bounties")) as r:
            listed = (await r.json())["bounties"]
        assert [b["id"] for b in listed] == [bounty_id]
        expected_sha = listed[0]["package"]["sha256"]
        async with session.get(url(server, f"/api/v1/bounties/{bounty_id}/package")) as r:
            assert r.status == 402
            assert (await r.json())["price_sats"] == 21
    async with L402Client(agent, spend_cap_sats=100) as client:
        package = await client.get(url(server, f"/api/v1/bounties/{bounty_id}/package"))
        assert package.status == 200 and package.paid_sats == 21
        assert hashlib.sha256(package.body).hexdigest() == expected_sha == package.headers["X-Package-SHA256"]
        names = tarfile.open(fileobj=io.BytesIO(package.body)).getnames()
        assert "target/solve.py" in names and "public/inputs/nums.json" in names
        assert not any(n.startswith("heldout") for n in names)
        again = await client.get(url(server, f"/api/v1/bounties/{bounty_id}/package"))
        assert again.status == 200 and again.paid_sats == 0  # cached token, no second payment
        sub = await client.post(url(server, f"/api/v1/bounties/{bounty_id}/submissions"),
                                json={"diff": diff_text(), "claimed_score": 0.0})
        assert sub.status == 202, sub.text
        assert sub.paid_sats == 5
        status = await client.get(url(server, f"/api/v1/submissions/{sub.json()['id']}"))
        assert status.json()["status"] == "QUEUED"
        assert status.json()["bounty_id"] == bounty_id
    spent = before - (await agent.status()).balance_msat
    assert 26_000 <= spent <= 26_000 + 2 * 1_100  # 21 + 5 sats plus routing fees


async def test_challenge_header_order_and_lsat(server, coordinator, bounty_dir, net):
    bounty_id = await _open_bounty(coordinator, bounty_dir)
    async with aiohttp.ClientSession() as session:
        mac, pre, challenges = await _buy(session, server, net, f"/api/v1/bounties/{bounty_id}/package")
        assert challenges[0].startswith("L402 ") and challenges[1].startswith("LSAT ")
        assert re.match(r'^L402 macaroon="[^"]+", invoice="[^"]+", version="0", token="[^"]+"$', challenges[0])
        assert parse_challenge(challenges).macaroon == mac
        async with session.get(url(server, f"/api/v1/bounties/{bounty_id}/package"),
                               headers={"Authorization": f"LSAT {mac}:{pre}"}) as r:
            assert r.status == 200


async def _refusal(session, srv, path, auth, method="GET", **kw):
    async with session.request(method, url(srv, path), headers={"Authorization": auth}, **kw) as r:
        return r.status, await r.json()


async def test_refusals_say_why(server, coordinator, bounty_dir, tmp_path, net):
    bounty_id = await _open_bounty(coordinator, bounty_dir)
    other_id = await _open_bounty(coordinator, make_bounty(tmp_path / "other"))
    pkg = f"/api/v1/bounties/{bounty_id}/package"
    async with aiohttp.ClientSession() as session:
        mac, pre, _ = await _buy(session, server, net, pkg)
        cases = {
            "wrong_preimage": (pkg, f"L402 {mac}:{'00' * 32}"),
            "wrong_bounty": (f"/api/v1/bounties/{other_id}/package", f"L402 {mac}:{pre}"),
            "malformed": (pkg, "L402 not-a-token"),
        }
        for reason, (path, auth) in cases.items():
            status, body = await _refusal(session, server, path, auth)
            assert (status, body["reason"]) == (401 if reason == "malformed" else 402, reason), body
            assert body["message"]
        # A download-only token used to submit.
        status, body = await _refusal(session, server, f"/api/v1/bounties/{bounty_id}/submissions", f"L402 {mac}:{pre}",
                                      method="POST", json={"diff": diff_text()})
        assert (status, body["reason"]) == (402, "missing_capability") and "submit" in body["message"]
        # A forged caveat: the signature no longer matches.
        raw = base64.b64decode(mac)
        forged = base64.b64encode(raw.replace(b"bounties_capabilities=download", b"bounties_capabilities=submit!!"))
        status, body = await _refusal(session, server, pkg, f"L402 {forged.decode()}:{pre}")
        assert (status, body["reason"]) == (402, "bad_signature")
        # An appended caveat that widens (a later valid_until) is refused; one that narrows works.
        widened = Macaroon.deserialize(mac)
        widened.add_first_party_caveat(f"bounties_valid_until={int(time.time()) + 10**9}")
        status, body = await _refusal(session, server, pkg, f"L402 {widened.serialize()}:{pre}")
        assert (status, body["reason"]) == (402, "caveat_not_narrowing")
        expired = Macaroon.deserialize(mac)
        expired.add_first_party_caveat(f"bounties_valid_until={int(time.time()) - 1}")
        status, body = await _refusal(session, server, pkg, f"L402 {expired.serialize()}:{pre}")
        assert (status, body["reason"]) == (402, "expired")
        # Revoked through the admin API.
        token_id = Macaroon.deserialize(mac).identifier_bytes[34:].hex()
        async with session.post(url(server, f"/api/v1/admin/tokens/{token_id}/revoke"),
                                headers={"Authorization": f"Bearer {server.admin_token}"}) as r:
            assert r.status == 200 and (await r.json())["revoked_keys"] == 1
        status, body = await _refusal(session, server, pkg, f"L402 {mac}:{pre}")
        assert (status, body["reason"]) == (402, "revoked")


async def test_no_invoice_for_unknown_or_closed_bounty(server, coordinator, bounty_dir):
    bounty_id = await _open_bounty(coordinator, bounty_dir)
    await coordinator.close_bounty(bounty_id)
    async with aiohttp.ClientSession() as session:
        async with session.get(url(server, "/api/v1/bounties/nope/package")) as r:
            assert r.status == 404 and (await r.json())["error"] == "unknown_bounty"
        async with session.post(url(server, f"/api/v1/bounties/{bounty_id}/submissions"), json={}) as r:
            assert r.status == 409 and (await r.json())["error"] == "bounty_not_open"
    assert await coordinator.store.scalar("SELECT COUNT(*) FROM invoices WHERE kind = 'l402'") == 0


async def test_spending_cap_stops_the_client(server, coordinator, bounty_dir, net):
    bounty_id = await _open_bounty(coordinator, bounty_dir)
    async with L402Client(net.node("agent-1"), spend_cap_sats=20) as client:
        with pytest.raises(SpendingCapExceeded):
            await client.get(url(server, f"/api/v1/bounties/{bounty_id}/package"))
        assert client.spent_msat == 0


async def test_burst_gets_429_with_retry_after(coordinator, bounty_dir):
    from aiohttp.test_utils import TestServer

    from l402tui.coordinator.app import create_app

    coordinator.cfg = coordinator.cfg.with_overrides({"rate_limits.per_ip_per_minute": 10})
    await _open_bounty(coordinator, bounty_dir)
    srv = TestServer(create_app(coordinator, manage_lifecycle=False), host="127.0.0.1")
    await srv.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            statuses = []
            for _ in range(15):
                async with session.get(url(srv, "/api/v1/bounties")) as r:
                    statuses.append(r.status)
                    if r.status == 429:
                        retry_after = int(r.headers["Retry-After"])
                        body = await r.json()
        assert statuses[:10] == [200] * 10 and set(statuses[10:]) == {429}
        assert retry_after >= 1 and body["error"] == "rate_limited"
    finally:
        await srv.close()


async def test_tokens_survive_a_server_restart(cfg, net, bounty_dir):
    from aiohttp.test_utils import TestServer

    from l402tui.coordinator.app import create_app
    from l402tui.coordinator.service import Coordinator

    coord = await Coordinator.open(cfg, net.node("coordinator"))
    bounty_id = await _open_bounty(coord, bounty_dir)
    srv = TestServer(create_app(coord), host="127.0.0.1")
    await srv.start_server()
    path = f"/api/v1/bounties/{bounty_id}/package"
    async with aiohttp.ClientSession() as session:
        mac, pre, _ = await _buy(session, srv, net, path)
        await srv.close()  # stops the service and closes its store
        coord2 = await Coordinator.open(cfg, net.node("coordinator"))
        srv2 = TestServer(create_app(coord2), host="127.0.0.1")
        await srv2.start_server()
        try:
            async with session.get(url(srv2, path), headers={"Authorization": f"L402 {mac}:{pre}"}) as r:
                assert r.status == 200
        finally:
            await srv2.close()


async def test_accepted_submission_is_claimed_with_the_submitting_token(server, coordinator, bounty_dir, net):
    """download -> submit -> real evaluation (local sandbox) -> ACCEPTED -> claim with an invoice."""
    from l402tui.evaluation.worker import run_worker

    coordinator.cfg = coordinator.cfg.with_overrides({"evaluation.sandbox": "local",
                                                      "evaluation.allow_unsandboxed": True})
    await net.deposit("coordinator", 200_000_000)  # self-funded: the operator's node holds the pool
    bounty_id = await _open_bounty(coordinator, bounty_dir)
    agent = net.node("agent-1")
    async with L402Client(agent, spend_cap_sats=100) as client:
        sub = await client.post(url(server, f"/api/v1/bounties/{bounty_id}/submissions"),
                                json={"diff": diff_text(), "claimed_score": 1.0})
        assert sub.status == 202, sub.text
        sub_id = sub.json()["id"]
        await run_worker(coordinator.store, coordinator.cfg, idle_exit=True)
        await coordinator.reconcile_evaluations()
        # The service's own tick may be the one that records the verdict and calls payouts: poll.
        for _ in range(300):  # up to 15 s on a loaded machine
            status = (await client.get(url(server, f"/api/v1/submissions/{sub_id}"))).json()
            owed = [p for p in status.get("payouts", {}).get("payments", []) if p["status"] == "AWAITING_CLAIM"]
            if owed:
                break
            await asyncio.sleep(0.05)
        assert status["status"] == "ACCEPTED", status
        assert owed, status.get("payouts")
        amount = owed[0]["amount_msat"]
        invoice = await agent.create_invoice(amount, "my payout")
        credential = client.tokens[(url(server, "/").rstrip("/"), f"/api/v1/bounties/{bounty_id}/submissions")]
        async with aiohttp.ClientSession() as session:
            async with session.post(url(server, f"/api/v1/submissions/{sub_id}/claim"),
                                    json={"invoice": invoice.bolt11}) as r:
                assert r.status == 401 and (await r.json())["reason"] == "missing"
            async with session.post(url(server, f"/api/v1/submissions/{sub_id}/claim"), json={"invoice": invoice.bolt11},
                                    headers={"Authorization": f"L402 {credential}"}) as r:
                assert r.status == 200, await r.text()
        for _ in range(300):  # up to 15 s on a loaded machine
            if (await agent.lookup_invoice(invoice.payment_hash)).state.value == "SETTLED":
                break
            await asyncio.sleep(0.05)
        assert (await agent.lookup_invoice(invoice.payment_hash)).state.value == "SETTLED"


async def test_per_token_rate_limit(coordinator, bounty_dir, net):
    from aiohttp.test_utils import TestServer

    from l402tui.coordinator.app import create_app

    coordinator.cfg = coordinator.cfg.with_overrides({"rate_limits.per_token_per_minute": 3})
    bounty_id = await _open_bounty(coordinator, bounty_dir)
    srv = TestServer(create_app(coordinator, manage_lifecycle=False), host="127.0.0.1")
    await srv.start_server()
    path = f"/api/v1/bounties/{bounty_id}/package"
    try:
        async with aiohttp.ClientSession() as session:
            mac, pre, _ = await _buy(session, srv, net, path)
            statuses = []
            for _ in range(5):
                async with session.get(url(srv, path), headers={"Authorization": f"L402 {mac}:{pre}"}) as r:
                    statuses.append(r.status)
                    if r.status == 429:
                        assert int(r.headers["Retry-After"]) >= 1
                        assert "token" in (await r.json())["message"]
            assert statuses == [200, 200, 200, 429, 429]
            # Another client (no token) is not affected by this token's limit.
            async with session.get(url(srv, "/api/v1/bounties")) as r:
                assert r.status == 200
    finally:
        await srv.close()


async def test_aliases_and_well_known(server, coordinator, bounty_dir):
    bounty_id = await _open_bounty(coordinator, bounty_dir)
    async with aiohttp.ClientSession() as session:
        async with session.get(url(server, "/bounties")) as r:
            assert [b["id"] for b in (await r.json())["bounties"]] == [bounty_id]
        async with session.get(url(server, f"/bounty/{bounty_id}")) as r:
            assert (await r.json())["id"] == bounty_id
        async with session.post(url(server, f"/bounty/{bounty_id}/submit"), json={"diff": diff_text()}) as r:
            assert r.status == 402 and (await r.json())["capabilities"] == ["submit"]
        async with session.get(url(server, "/status")) as r:
            status = await r.json()
            assert status["lightning"]["backend"] == "sim" and status["bounties"] == {"OPEN": 1}
        async with session.get(url(server, "/.well-known/l402.json")) as r:
            prices = {route["path"]: route["price_sats"] for route in (await r.json())["routes"]}
            assert prices == {"/api/v1/bounties/{id}/package": 21, "/api/v1/bounties/{id}/submissions": 5,
                              "/bounty/{id}/submit": 5}


def test_client_ip_trusts_forwarded_for_only_when_configured():
    from aiohttp.test_utils import make_mocked_request

    from l402tui.l402.middleware import L402Gate

    request = make_mocked_request("GET", "/", headers={"X-Forwarded-For": "203.0.113.9, 10.0.0.2"})
    kwargs = dict(prices_sats={}, token_valid_s=60, per_token_per_minute=1, per_ip_per_minute=1)
    assert L402Gate(None, None, None, trust_forwarded_for=True, **kwargs).client_ip(request) == "10.0.0.2"
    assert L402Gate(None, None, None, **kwargs).client_ip(request) != "10.0.0.2"
