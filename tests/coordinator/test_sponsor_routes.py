"""What a sponsor credential opens and what it never does: every route of the app's route
table walked with it, caveats that would widen it, forged and foreign credentials, the
posting policy, and sources a sponsor may not name.  Real loopback HTTP and SQLite."""

from __future__ import annotations

import re
import time

import aiohttp
import pytest

from l402tui.coordinator.app import ROUTES
from l402tui.coordinator.sponsor_client import SponsorClient, buy_credential, pack_folder
from l402tui.l402.sponsor import SponsorAuthority, attenuate
from tests.coordinator.conftest import make_bounty, url


@pytest.fixture
def cfg(cfg):
    return cfg.with_overrides({"policy.who_may_post": "anyone_who_pays", "policy.posting_fee_sats": 1000})


async def _invite(coordinator, name="acme", **kw) -> str:
    minted = await SponsorAuthority(coordinator.store).invite(name=name, valid_until=int(time.time()) + 3600, **kw)
    return minted.macaroon_b64


async def _post(server, credential: str, folder) -> dict:
    client = SponsorClient(url(server, "/"), credential=credential)
    try:
        return await client.create_bounty(folder)
    finally:
        await client.close()


def _sample(schema: dict):
    """A value that passes ``schema``: the request reaches the access check, not a 422."""
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    kind = kind[0] if isinstance(kind, list) else kind
    if kind == "object":
        return {k: _sample(schema["properties"][k]) for k in schema.get("required", [])}
    return {"string": "lnbcrt1x", "boolean": True, "integer": 0, "number": 0}.get(kind)


async def _call(server, method: str, path: str, headers: dict, body: dict | None = None) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as http:
        async with http.request(method, url(server, path), headers=headers, json=body or {}) as r:
            return r.status, await r.json(content_type=None)


def _concrete(path: str, bounty_id: str, submission_id: str, evaluation_id: int) -> str:
    ids = {"id": bounty_id, "token_id": "admin", "key": "payout:x"}
    if "/submissions/{id}" in path:
        ids["id"] = submission_id
    if "/evaluations/{id}" in path:
        ids["id"] = str(evaluation_id)
    return re.sub(r"{(\w+)}", lambda m: ids[m.group(1)], path)


async def test_every_route_refuses_a_sponsor_outside_its_own_bounties(server, coordinator, net, tmp_path):
    mine = await _invite(coordinator, "mine")
    theirs = await _invite(coordinator, "theirs")
    their_bounty = (await _post(server, theirs, make_bounty(tmp_path / "theirs")))["bounty"]["id"]
    await _post(server, mine, make_bounty(tmp_path / "mine"))
    # An OPEN bounty of the operator's, so the L402 routes get as far as checking the credential.
    operators = (await coordinator.create_bounty(make_bounty(tmp_path / "ops"), self_funded=True))["bounty"]["id"]
    async with coordinator.store.transaction() as txn:
        sub_id = "s-theirs"
        await txn.insert("submissions", {"id": sub_id, "bounty_id": their_bounty, "token_id": "t", "status": "FLAGGED",
                                         "diff": "x", "diff_sha256": "0" * 64, "created_at": time.time(),
                                         "updated_at": time.time()})
    evaluation_id = await coordinator.store.scalar("SELECT id FROM evaluations WHERE bounty_id = ?", (their_bounty,))
    paid, _ = await buy_credential(url(server, "/"), net.node("sponsor"), make_bounty(tmp_path / "paid"),
                                   spend_cap_sats=1500)
    walked = {"admin": 0, "l402": 0, "token": 0, "sponsor": 0}
    for route in ROUTES:
        if route.access == "public":
            continue
        walked[route.access] += 1
        on = operators if route.access in ("l402", "token") else their_bounty
        path = _concrete(route.path, on, sub_id, evaluation_id)
        for header in (f"Bearer {mine}", f"L402 {paid}"):
            status, body = await _call(server, route.method, path, {"Authorization": header},
                                       _sample(route.body) if route.body else None)
            where = (route.method, route.path, header[:6], status, body)
            if route.access == "admin":
                assert status == 401 and body["reason"] == "admin", where
            elif route.access == "l402":
                # A fresh challenge with the reason the credential was refused, never the route itself.
                # (a Bearer header is no L402 credential at all: a plain challenge).
                assert status == 402 and body["error"] == "payment_required", where
                if header.startswith("L402"):
                    assert body["refused"]["reason"] in ("unscoped", "wrong_service"), where
            elif route.access == "token":
                assert status in (401, 404), where
            elif "{id}" in route.path:
                assert status == 404 and body["error"].startswith("unknown_"), where
            elif route.method == "GET":
                assert status == 200 and their_bounty not in str(body), where
    assert walked["admin"] >= 20 and walked["l402"] >= 3 and walked["sponsor"] >= 15, walked


async def test_a_credential_only_narrows(server, coordinator, tmp_path):
    mine = await _invite(coordinator)
    posted = (await _post(server, mine, make_bounty(tmp_path / "a")))["bounty"]["id"]
    second = (await _post(server, mine, make_bounty(tmp_path / "b")))["bounty"]["id"]

    async def status(credential: str, method: str = "GET", path: str = "/api/v1/sponsor/bounties") -> tuple[int, dict]:
        return await _call(server, method, path, {"Authorization": f"Bearer {credential}"})

    one = attenuate(mine, f"bounty_id={posted}")
    code, body = await status(one)
    assert code == 200 and [b["id"] for b in body["bounties"]] == [posted]
    assert (await status(one, path=f"/api/v1/sponsor/bounties/{second}"))[0] == 404
    assert (await status(attenuate(one, f"bounty_id={second}")))[1]["reason"] == "caveat_not_narrowing"
    read_only = attenuate(mine, "sponsor_capabilities=read")
    assert (await status(read_only))[0] == 200
    code, body = await status(read_only, "POST", f"/api/v1/sponsor/bounties/{posted}/cancel")
    assert code == 403 and body["error"] == "missing_capability"
    for widening in ("sponsor_capabilities=read,post,review,manage,admin", "sponsor_id=sp_someone_else",
                     f"sponsor_valid_until={int(time.time()) + 10**8}", "services=bounties:0"):
        code, body = await status(attenuate(read_only if "capab" in widening else mine, widening))
        assert code == 401 and body["reason"] == "caveat_not_narrowing", widening
    code, body = await status(attenuate(mine, f"sponsor_valid_until={int(time.time()) - 1}"))
    assert code == 401 and body["reason"] == "expired"
    # A caveat edited in place (not appended) breaks the signature.
    import base64

    raw = base64.b64decode(mine)
    forged = base64.b64encode(raw.replace(b"post,read,review,manage", b"post,read,review,admin!")).decode()
    assert (await status(forged))[1]["reason"] == "bad_signature"
    # Neither the admin macaroon nor an agent's L402 token is a sponsor credential.
    assert (await status(server.admin_token))[1]["reason"] in ("malformed", "not_a_sponsor")
    sponsor_id = (await _call(server, "GET", "/api/v1/sponsor", {"Authorization": f"Bearer {mine}"}))[1]["sponsor_id"]
    assert await SponsorAuthority(coordinator.store).remove(sponsor_id)
    assert (await status(mine))[1]["reason"] == "revoked"


async def test_a_paid_credential_needs_its_preimage(server, coordinator, net, tmp_path):
    paid, _ = await buy_credential(url(server, "/"), net.node("sponsor"), make_bounty(tmp_path / "a"),
                                   spend_cap_sats=1500)
    mac, _, preimage = paid.partition(":")
    for header, reason in ((f"Bearer {mac}", "missing_preimage"), (f"L402 {mac}:{'0' * 64}", "wrong_preimage")):
        code, body = await _call(server, "GET", "/api/v1/sponsor/bounties", {"Authorization": header})
        assert code == 401 and body["reason"] == reason


@pytest.mark.parametrize("who, code, error", [("invited", 403, "invite_only"), ("nobody", 403, "posting_closed")])
async def test_policy_decides_who_may_post(coordinator, server, tmp_path, who, code, error):
    coordinator.cfg = coordinator.cfg.with_overrides({"policy.who_may_post": who})
    async with aiohttp.ClientSession() as http:
        async with http.post(url(server, "/api/v1/sponsor/bounties"), data=pack_folder(make_bounty(tmp_path / "x")),
                             headers={"Content-Type": "application/gzip"}) as r:
            assert (r.status, (await r.json())["error"]) == (code, error)
    if who == "invited":  # the operator's invite still posts
        assert (await _post(server, await _invite(coordinator), make_bounty(tmp_path / "y")))["bounty"]["id"]


async def test_a_sponsor_names_no_path_and_no_local_repository(server, coordinator, tmp_path):
    mine = await _invite(coordinator)
    headers = {"Authorization": f"Bearer {mine}"}
    async with aiohttp.ClientSession() as http:
        folder = str(make_bounty(tmp_path / "on-the-host"))
        async with http.post(url(server, "/api/v1/sponsor/bounties"), json={"path": folder}, headers=headers) as r:
            assert r.status == 422 and "'git' is required" in (await r.json())["message"]
        git = {"git": {"url": f"file://{folder}", "commit": "0" * 40}}
        async with http.post(url(server, "/api/v1/sponsor/bounties"), json=git, headers=headers) as r:
            body = await r.json()
            assert r.status == 422 and "file" in body["message"], body
    assert (await coordinator.store.scalar("SELECT COUNT(*) FROM bounties")) == 0
    whoami = (await _call(server, "GET", "/api/v1/sponsor", headers))[1]
    assert whoami["posts_left"] is None and whoami["bounties"] == []


async def test_without_a_sandbox_no_sponsor_bounty_is_taken_and_no_fee_is_sold(coordinator, server, tmp_path):
    # A sponsor's run, tests and scorer are a stranger's code: on the local runner they would
    # run on the coordinator's host.  Refused before any posting fee, for paid and invited alike.
    coordinator.cfg = coordinator.cfg.with_overrides({"evaluation.sandbox": "local"})
    invited = await _invite(coordinator)
    package = pack_folder(make_bounty(tmp_path / "x"))
    async with aiohttp.ClientSession() as http:
        for headers in ({}, {"Authorization": f"Bearer {invited}"}):
            async with http.post(url(server, "/api/v1/sponsor/bounties"), data=package,
                                 headers={"Content-Type": "application/gzip", **headers}) as r:
                body = await r.json()
                assert (r.status, body["error"]) == (503, "no_sandbox"), body
                assert "WWW-Authenticate" not in r.headers and "sandbox setup" in body["message"]
    assert (await coordinator.store.scalar("SELECT COUNT(*) FROM bounties")) == 0
    # The operator's explicit consent to unsandboxed runs is the one way past it.
    coordinator.cfg = coordinator.cfg.with_overrides({"evaluation.allow_unsandboxed": True})
    assert (await _post(server, invited, make_bounty(tmp_path / "y")))["bounty"]["id"]
