"""The operator's bound on unpaid L402 offers reaches the app's gate, and a lapsing unpaid
offer writes no event (anyone can cause one per request, from any number of addresses)."""

from __future__ import annotations


import aiohttp
import pytest

from l402tui.coordinator.http_common import GATE
from tests.coordinator.conftest import url


@pytest.fixture
def cfg(cfg):
    return cfg.with_overrides({"l402.max_unpaid_challenges": 2})


async def test_the_configured_bound_on_unpaid_offers_is_the_gates(server, coordinator, bounty_dir):
    bounty_id = (await coordinator.create_bounty(bounty_dir, self_funded=True))["bounty"]["id"]
    path = url(server, f"/api/v1/bounties/{bounty_id}/package")
    statuses = []
    async with aiohttp.ClientSession() as session:
        for _ in range(3):
            async with session.get(path) as r:
                statuses.append(r.status)
                if r.status == 503:
                    assert int(r.headers["Retry-After"]) >= 1
    assert statuses == [402, 402, 503]
    assert server.app[GATE].unpaid.max_unpaid == 2


async def test_an_unpaid_offer_that_lapses_writes_no_event(server, coordinator, bounty_dir):
    bounty_id = (await coordinator.create_bounty(bounty_dir, self_funded=True))["bounty"]["id"]
    async with aiohttp.ClientSession() as session:
        async with session.get(url(server, f"/api/v1/bounties/{bounty_id}/package")) as r:
            offer = await r.json()
    before = await coordinator.store.scalar("SELECT COUNT(*) FROM events")
    await coordinator.apply_invoice_state(offer["payment_hash"], "EXPIRED")
    assert await coordinator.store.scalar("SELECT status FROM invoices WHERE payment_hash = ?",
                                          (offer["payment_hash"],)) == "EXPIRED"
    assert await coordinator.store.scalar("SELECT COUNT(*) FROM events") == before
