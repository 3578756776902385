"""402 -> pay -> retry with clients we did not write, each paying through a sim agent node.

- ``l402-requests`` (AsyncL402Client; strict regex: macaroon= then invoice=, adjacent).
- ``l402kit`` (its sync L402Client, driven from a worker thread; reads macaroon= / invoice=).
- a minimal client that reads only ``token=`` (bLIP-0026 wording).
"""

from __future__ import annotations

import asyncio
import hashlib
import re

import aiohttp

from l402tui.coordinator.service import Coordinator
from tests.coordinator.conftest import url


async def _open(coordinator: Coordinator, folder) -> tuple[str, str]:
    bounty = (await coordinator.create_bounty(folder, self_funded=True))["bounty"]
    return bounty["id"], bounty["package"]["sha256"]


async def test_l402_requests_async_client(server, coordinator, bounty_dir, net):
    from l402_requests import AsyncL402Client, BudgetController
    from l402_requests.wallets import WalletBase

    agent = net.node("agent-1")

    class SimWallet(WalletBase):
        async def pay_invoice(self, bolt11: str) -> str:
            return (await agent.pay(bolt11)).preimage

    bounty_id, sha = await _open(coordinator, bounty_dir)
    async with AsyncL402Client(wallet=SimWallet(), budget=BudgetController(max_sats_per_request=100)) as client:
        r = await client.get(url(server, f"/api/v1/bounties/{bounty_id}/package"))
        assert r.status_code == 200, r.text
        assert hashlib.sha256(r.content).hexdigest() == sha
        again = await client.get(url(server, f"/api/v1/bounties/{bounty_id}/package"))
        assert again.status_code == 200
    paid = [p for p in await agent.list_payments() if p.state.value == "COMPLETE"]
    assert len(paid) == 1  # the cached credential was reused


async def test_l402kit_sync_client_from_a_thread(server, coordinator, bounty_dir, net):
    from l402kit import L402Client
    from l402kit.client import L402Wallet

    agent = net.node("agent-1")
    loop = asyncio.get_running_loop()

    class SimWallet(L402Wallet):
        def pay_invoice(self, bolt11: str) -> str:
            # l402kit calls the wallet synchronously: hop back onto the event loop that owns the sim.
            return asyncio.run_coroutine_threadsafe(agent.pay(bolt11), loop).result(30).preimage

    bounty_id, sha = await _open(coordinator, bounty_dir)
    target = url(server, f"/api/v1/bounties/{bounty_id}/package")

    def fetch() -> tuple[int, bytes, dict]:
        with L402Client(wallet=SimWallet(), budget_sats=100) as client:
            r = client.get(target)
            return r.status_code, r.content, client.spending_report().__dict__

    status, content, report = await asyncio.to_thread(fetch)
    assert status == 200
    assert hashlib.sha256(content).hexdigest() == sha
    assert report["total"] == 21  # it read price_sats from our 402 body


async def test_token_only_client(server, coordinator, bounty_dir, net):
    bounty_id, sha = await _open(coordinator, bounty_dir)
    target = url(server, f"/api/v1/bounties/{bounty_id}/package")
    async with aiohttp.ClientSession() as session:
        async with session.get(target) as r:
            assert r.status == 402
            header = r.headers.getall("WWW-Authenticate")[0]
        token = re.search(r'token="([^"]+)"', header).group(1)
        invoice = re.search(r'invoice="([^"]+)"', header).group(1)
        preimage = (await net.node("agent-1").pay(invoice)).preimage
        async with session.get(target, headers={"Authorization": f"L402 {token}:{preimage}"}) as r:
            assert r.status == 200
            assert hashlib.sha256(await r.read()).hexdigest() == sha
