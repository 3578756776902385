"""Every scoped route refuses a caveat-free or foreign-root macaroon (the route table is walked, so a
new gated route is covered the day it is added), and the claim route wants the submitter's token
for that submission's bounty."""

from __future__ import annotations

import os
import time

import aiohttp
from pymacaroons import Macaroon

from l402tui.coordinator.app import ROUTES
from tests.coordinator.conftest import diff_text, make_bounty, url
from tests.l402.helpers import buy, challenge_of, forge, open_bounty, token_row

SCOPED = [r for r in ROUTES if r.access in ("l402", "token")]


def _scope(bounty: str) -> list[str]:
    return ["services=bounties:0", "bounties_capabilities=download,submit",
            f"bounties_valid_until={int(time.time()) + 3600}", f"bounty_id={bounty}"]


async def _counts(store) -> tuple[int, int]:
    subs = await store.scalar("SELECT COUNT(*) FROM submissions")
    pays = await store.scalar("SELECT COUNT(*) FROM payments")
    return subs, pays


async def test_scoped_routes_are_the_ones_we_think():
    paths = {(r.method, r.path) for r in SCOPED}
    assert {("GET", "/api/v1/bounties/{id}/package"), ("POST", "/api/v1/bounties/{id}/submissions"),
            ("POST", "/bounty/{id}/submit"), ("POST", "/api/v1/submissions/{id}/claim")} <= paths


async def test_caveat_free_and_foreign_root_macaroons_open_no_scoped_route(server, coordinator, bounty_dir,
                                                                            tmp_path, net):
    victim_bounty, _ = await open_bounty(coordinator, bounty_dir)
    other_bounty, _ = await open_bounty(coordinator, make_bounty(tmp_path / "other"))
    async with aiohttp.ClientSession() as session:
        # The victim buys a submit token for their bounty and submits with it.
        submit_path = f"/api/v1/bounties/{victim_bounty}/submissions"
        mac, pre = await buy(session, server, net, submit_path, "POST", json={"diff": diff_text()})
        async with session.post(url(server, submit_path), json={"diff": diff_text()},
                                headers={"Authorization": f"L402 {mac}:{pre}"}) as r:
            assert r.status == 202, await r.text()
            submission_id = (await r.json())["id"]
        # The attacker reads the victim's row from the database (the issue's `nobody` with a 0644 file)
        # and knows the preimage (it sat in the sim's database the same way).
        row = token_row(coordinator.store.path, Macaroon.deserialize(mac).identifier_bytes[2:34].hex())
        stored = bytes(row["root_key"])
        forged = {
            "caveat-free, stored key": forge(row["payment_hash"], row["token_id"], stored, []),
            "full scope of the other bounty, stored key": forge(row["payment_hash"], row["token_id"], stored,
                                                                _scope(other_bounty)),
            "full scope of the victim's bounty, stored key": forge(row["payment_hash"], row["token_id"], stored,
                                                                   _scope(victim_bounty)),
            "caveat-free, random key": forge(row["payment_hash"], row["token_id"], os.urandom(32), []),
        }
        before = await _counts(coordinator.store)
        invoice = (await net.node("agent-1").create_invoice(1000, "steal")).bolt11
        for route in SCOPED:
            for target in (victim_bounty, other_bounty):
                path = route.path.replace("{id}", submission_id if route.access == "token" else target)
                body = {"invoice": invoice} if route.access == "token" else {"diff": diff_text()}
                for name, fake in forged.items():
                    kw = {"json": body} if route.method == "POST" else {}
                    async with session.request(route.method, url(server, path), **kw,
                                               headers={"Authorization": f"L402 {fake}:{pre}"}) as r:
                        got = await r.json()
                        where = (route.method, path, name, got)
                        if route.access == "l402":
                            # Spec: a token that cannot open the route gets a fresh challenge.
                            assert r.status == 402, where
                            assert challenge_of(r.headers)["macaroon"] not in (fake, mac), where
                            assert got["reason"] in ("bad_signature", "unscoped"), where
                        else:
                            assert r.status == 401 and got["reason"] in ("bad_signature", "unscoped"), where
        assert await _counts(coordinator.store) == before  # nothing submitted, nothing paid


async def test_claim_wants_the_submitters_token_for_that_bounty(server, coordinator, bounty_dir, tmp_path, net):
    bounty_a, _ = await open_bounty(coordinator, bounty_dir)
    bounty_b, _ = await open_bounty(coordinator, make_bounty(tmp_path / "other"))
    async with aiohttp.ClientSession() as session:
        tokens = {}
        for bounty in (bounty_a, bounty_b):
            path = f"/api/v1/bounties/{bounty}/submissions"
            tokens[bounty] = await buy(session, server, net, path, "POST", json={"diff": diff_text()})
        mac, pre = tokens[bounty_a]
        async with session.post(url(server, f"/api/v1/bounties/{bounty_a}/submissions"), json={"diff": diff_text()},
                                headers={"Authorization": f"L402 {mac}:{pre}"}) as r:
            assert r.status == 202, await r.text()
            sub_a = (await r.json())["id"]
        download = await buy(session, server, net, f"/api/v1/bounties/{bounty_a}/package")
        claim = url(server, f"/api/v1/submissions/{sub_a}/claim")
        invoice = (await net.node("agent-1").create_invoice(1000, "payout")).bolt11
        cases = [
            (tokens[bounty_b], 401, "wrong_bounty"),  # a valid submit token, but for the other bounty
            (download, 401, "missing_capability"),  # the right bounty, but not a submit token
            ((mac, "00" * 32), 401, "wrong_preimage"),
        ]
        for (m, p), status, reason in cases:
            async with session.post(claim, json={"invoice": invoice}, headers={"Authorization": f"L402 {m}:{p}"}) as r:
                assert (r.status, (await r.json())["reason"]) == (status, reason)
        # The submitter's own token passes authentication and reaches the claim logic (nothing is owed yet).
        async with session.post(claim, json={"invoice": invoice}, headers={"Authorization": f"LSAT {mac}:{pre}"}) as r:
            assert r.status not in (401, 402), await r.text()
        async with session.post(url(server, "/api/v1/submissions/nope/claim"), json={"invoice": invoice},
                                headers={"Authorization": f"L402 {mac}:{pre}"}) as r:
            assert r.status == 404


async def test_well_known_lists_every_gated_route_with_its_price(server):
    async with aiohttp.ClientSession() as session:
        async with session.get(url(server, "/.well-known/l402.json")) as r:
            doc = await r.json()
    listed = {(e["method"], e["path"]): e for e in doc["routes"]}
    gated = {(r.method, r.path) for r in ROUTES if r.access == "l402"}
    assert set(listed) == gated
    for entry in listed.values():
        assert isinstance(entry["price_sats"], int) and entry["price_sats"] > 0, entry
    assert listed[("POST", "/bounty/{id}/submit")]["price_sats"] == \
        listed[("POST", "/api/v1/bounties/{id}/submissions")]["price_sats"]
    assert listed[("POST", "/bounty/{id}/submit")]["alias_of"] == "/api/v1/bounties/{id}/submissions"
    assert {(e["method"], e["path"]) for e in doc["token_routes"]} == \
        {(r.method, r.path) for r in ROUTES if r.access == "token"}
