"""The coordinator service itself (publishing, the L402 gate over HTTP, submissions, the invoice
stream) on real lightningd + bitcoind regtest: the sponsor funds a bounty by hold invoice, the
agent pays the L402 fees and a stake from its own node, and the sponsor gets the pool back
when the bounty is cancelled, or by itself when nobody settles the funding hold before its
HTLC nears expiry.  test_regtest_bounty.py follows the money past the verdict."""

from __future__ import annotations

import asyncio
import hashlib
import json

import aiohttp
import pytest

from l402tui.config import load_config
from l402tui.coordinator.service import Coordinator
from l402tui.lightning.backend import InvoiceState, PaymentState
from l402tui.lightning.cln import ClnBackend
from l402tui.store import Store
from tests.coordinator.conftest import diff_text, make_bounty
from tests.lightning.regtest import SAFETY_BLOCKS

pytestmark = pytest.mark.regtest


async def _until(predicate, what: str, timeout: float = 30.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not (value := await predicate()):
        assert asyncio.get_running_loop().time() < deadline, f"never {what}"
        await asyncio.sleep(0.1)
    return value


@pytest.fixture
async def service(regtest_network, tmp_path):
    """(coordinator service on the real coordinator node, its HTTP base URL, sponsor, agent)."""
    from aiohttp.test_utils import TestServer

    from l402tui.coordinator.app import create_app

    nodes = regtest_network.nodes
    backend, sponsor, agent = (ClnBackend(nodes[n].rpc_path) for n in ("coordinator", "sponsor", "agent"))
    cfg = load_config(tmp_path / "no-config.toml", env={}).with_overrides(
        {"paths.data_dir": str(tmp_path / "data"), "lightning.hold_cltv_blocks": 40})
    store = await Store.open(cfg.db_path)
    coord = Coordinator(cfg, store, backend)
    coord.tick_s = 0.1
    server = TestServer(create_app(coord, manage_lifecycle=False), host="127.0.0.1")
    await coord.start()
    await server.start_server()
    try:
        yield coord, str(server.make_url("")).rstrip("/"), sponsor, agent
    finally:
        await server.close()
        await coord.stop()
        await store.close()
        for b in (backend, sponsor, agent):
            await b.close()


async def _status(coord, bounty_id: str, status: str) -> bool:
    return (await coord.get_bounty(bounty_id))["status"] == status


async def _refunded(payer: ClnBackend, payment_hash: str) -> bool:
    return (await payer.lookup_payment(payment_hash)).state is PaymentState.FAILED


async def _l402(session: aiohttp.ClientSession, agent: ClnBackend, method: str, target: str, **kw):
    """One gated request as an agent makes it: 402, pay from its node, retry with the token."""
    async with session.request(method, target, **kw) as r:
        assert r.status == 402, await r.text()
        challenge = await r.json()
    paid = await agent.pay(challenge["invoice"], timeout_s=30)
    assert paid.state is PaymentState.COMPLETE
    headers = {"Authorization": f"L402 {challenge['macaroon']}:{paid.preimage}"}
    async with session.request(method, target, headers=headers, **kw) as r:
        return r.status, await r.read(), dict(r.headers)


async def test_fund_fee_stake_and_refund_through_the_service(service, tmp_path):
    coord, base, sponsor, agent = service
    created = await coord.create_bounty(make_bounty(tmp_path / "sponsor", stake_sats=1_000), self_funded=False)
    bounty_id, funding = created["bounty"]["id"], created["funding"]
    assert created["bounty"]["status"] == "AWAITING_FUNDING"

    # The sponsor's payment is held by our plugin; the invoice stream opens the bounty.
    assert (await sponsor.pay(funding["invoice"], timeout_s=1)).state is PaymentState.PENDING
    await _until(lambda: _status(coord, bounty_id, "OPEN"), "OPEN once the funding hold was accepted")

    async with aiohttp.ClientSession() as session:
        status, body, headers = await _l402(session, agent, "GET", f"{base}/api/v1/bounties/{bounty_id}/package")
        assert status == 200
        assert hashlib.sha256(body).hexdigest() == headers["X-Package-SHA256"] == \
            created["bounty"]["package"]["sha256"]
        status, body, _ = await _l402(session, agent, "POST", f"{base}/api/v1/bounties/{bounty_id}/submissions",
                                      json={"diff": diff_text(), "claimed_score": 0.0})
    assert status == 202, body
    view = json.loads(body)
    assert view["status"] == "AWAITING_STAKE" and view["stake"]["amount_sats"] == 1_000
    assert (await agent.pay(view["stake"]["invoice"], timeout_s=1)).state is PaymentState.PENDING

    async def queued():
        return (await coord.submission(view["id"]))["status"] == "QUEUED"

    await _until(queued, "QUEUED once the stake was held")

    # Cancelled before any payout: the funding hold is failed back to the sponsor.
    assert (await coord.cancel_bounty(bounty_id))["status"] == "CANCELED"
    await _until(lambda: _refunded(sponsor, funding["payment_hash"]), "the sponsor refunded")
    assert (await coord.backend.lookup_invoice(funding["payment_hash"])).state is InvoiceState.CANCELED
    fees = await coord.store.fetchall("SELECT status FROM invoices WHERE kind = 'l402' AND bounty_id = ?",
                                      (bounty_id,))
    assert [r["status"] for r in fees] == ["SETTLED", "SETTLED"]


async def test_an_unsettled_funding_hold_refunds_itself_before_htlc_expiry(service, tmp_path, regtest_network):
    coord, _, sponsor, _ = service
    created = await coord.create_bounty(make_bounty(tmp_path / "sponsor"), self_funded=False)
    bounty_id, funding = created["bounty"]["id"], created["funding"]
    assert (await sponsor.pay(funding["invoice"], timeout_s=1)).state is PaymentState.PENDING
    await _until(lambda: _status(coord, bounty_id, "OPEN"), "OPEN once the funding hold was accepted")
    held = await coord.backend.lookup_invoice(funding["payment_hash"])
    assert held.cltv_expiry is not None

    # Blocks pass and nobody settles: the plugin cancels at the safety margin, the sponsor is
    # refunded on chain's clock, and the coordinator stops selling the bounty.
    height = regtest_network.height()
    regtest_network.mine(held.cltv_expiry - SAFETY_BLOCKS - height)
    await _until(lambda: _refunded(sponsor, funding["payment_hash"]), "the sponsor refunded", timeout=60)
    await _until(lambda: _status(coord, bounty_id, "CANCELED"), "CANCELED after the funding hold was cancelled")
    assert (await coord.get_bounty(bounty_id))["status"] == "CANCELED"
