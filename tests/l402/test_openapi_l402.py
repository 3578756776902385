"""The OpenAPI document tells a client writer what the L402 gate really sends: the 402
challenge header on every gated route, the package's sha256 header and gzip body, and the
gzip upload a sponsor may post instead of a path.  Each documented header is checked
against a real answer."""

from __future__ import annotations

import aiohttp

from l402tui.coordinator.app import ROUTES
from tests.coordinator.conftest import url
from tests.l402.helpers import buy, challenge_of, open_bounty


async def _document(server) -> dict:
    async with aiohttp.ClientSession() as session:
        async with session.get(url(server, "/api/v1/openapi.json")) as r:
            assert r.status == 200
            return await r.json()


async def test_every_gated_route_documents_its_challenge_and_paid_answer(server, coordinator, bounty_dir, net):
    doc = await _document(server)
    gated = [r for r in ROUTES if r.access == "l402"]
    assert {("POST", "/bounty/{id}/submit"), ("GET", "/api/v1/bounties/{id}/package")} <= \
        {(r.method, r.path) for r in gated}
    for route in gated:
        op = doc["paths"][route.path][route.method.lower()]
        challenge = op["responses"]["402"]["headers"]["WWW-Authenticate"]
        assert challenge["required"] and all(p in challenge["description"] for p in ("macaroon=", "invoice="))
        assert op["security"] == [{"L402": []}]
        assert "WWW-Authenticate" in op["responses"]["401"]["headers"]

    package = doc["paths"]["/api/v1/bounties/{id}/package"]["get"]["responses"]["200"]
    assert package["headers"]["X-Package-SHA256"]["required"]
    assert "application/gzip" in package["content"]
    upload = doc["paths"]["/api/v1/admin/bounties"]["post"]["requestBody"]["content"]
    assert {"application/json", "application/gzip"} <= set(upload)

    # What the document promises is what a client gets.
    bounty_id, sha = await open_bounty(coordinator, bounty_dir)
    path = f"/api/v1/bounties/{bounty_id}/package"
    async with aiohttp.ClientSession() as session:
        async with session.get(url(server, path)) as r:
            assert r.status == 402 and challenge_of(r.headers)["invoice"]
        mac, pre = await buy(session, server, net, path)
        async with session.get(url(server, path), headers={"Authorization": f"L402 {mac}:{pre}"}) as r:
            assert r.status == 200 and r.content_type == "application/gzip"
            assert r.headers["X-Package-SHA256"] == sha
