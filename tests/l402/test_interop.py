"""402 -> pay -> retry with clients we did not write, each paying through a sim agent node, each
downloading and submitting across two bounties against a served coordinator.

- ``l402-requests`` (AsyncL402Client; strict regex: macaroon= then invoice=, adjacent).  It caches one
  token per host and path prefix, so its second route presents the first route's token: that only
  works because such a token gets a 402 with a fresh challenge (a 401 would end its run).
- ``l402kit`` (its sync L402Client, driven from a worker thread; reads macaroon= / invoice=; caches
  per URL).
- a minimal client that reads only ``token=`` (bLIP-0026 wording).

Lightning Labs' l402sdk, and the first two against a real ``l402tui serve`` process, are in
test_interop_serve.py.
"""

from __future__ import annotations

import asyncio
import hashlib
import re

import aiohttp

from l402tui.coordinator.service import Coordinator
from tests.coordinator.conftest import diff_text, make_bounty, url


async def _open(coordinator: Coordinator, folder) -> tuple[str, str]:
    bounty = (await coordinator.create_bounty(folder, self_funded=True))["bounty"]
    return bounty["id"], bounty["package"]["sha256"]


async def _two_bounties(coordinator: Coordinator, bounty_dir, tmp_path) -> dict[str, str]:
    """{bounty id: package sha256} for two open bounties."""
    first = await _open(coordinator, bounty_dir)
    second = await _open(coordinator, make_bounty(tmp_path / "second"))
    return dict([first, second])


async def _submissions_of(coordinator: Coordinator) -> dict[str, str]:
    rows = await coordinator.store.fetchall("SELECT id, bounty_id FROM submissions")
    return {r["id"]: r["bounty_id"] for r in rows}


async def test_l402_requests_async_client_across_two_bounties(server, coordinator, bounty_dir, net, tmp_path):
    from l402_requests import AsyncL402Client, BudgetController
    from l402_requests.wallets import WalletBase

    agent = net.node("agent-1")

    class SimWallet(WalletBase):
        async def pay_invoice(self, bolt11: str) -> str:
            return (await agent.pay(bolt11)).preimage

    bounties = await _two_bounties(coordinator, bounty_dir, tmp_path)
    submitted = {}
    async with AsyncL402Client(wallet=SimWallet(), budget=BudgetController(max_sats_per_request=100)) as client:
        for bounty_id, sha in bounties.items():
            r = await client.get(url(server, f"/api/v1/bounties/{bounty_id}/package"))
            assert r.status_code == 200, r.text
            assert hashlib.sha256(r.content).hexdigest() == sha
            again = await client.get(url(server, f"/api/v1/bounties/{bounty_id}/package"))
            assert again.status_code == 200  # the cached token, no payment
            r = await client.post(url(server, f"/api/v1/bounties/{bounty_id}/submissions"),
                                  json={"diff": diff_text(), "claimed_score": 0.0})
            assert r.status_code == 202, r.text
            submitted[r.json()["id"]] = bounty_id
    assert await _submissions_of(coordinator) == submitted and set(submitted.values()) == set(bounties)
    paid = [p for p in await agent.list_payments() if p.state.value == "COMPLETE"]
    assert len(paid) == 4  # one download and one submit token per bounty; the repeat download reused its token


async def test_l402kit_sync_client_from_a_thread_across_two_bounties(server, coordinator, bounty_dir, net,
                                                                       tmp_path):
    from l402kit import L402Client
    from l402kit.client import L402Wallet

    agent = net.node("agent-1")
    loop = asyncio.get_running_loop()

    class SimWallet(L402Wallet):
        def pay_invoice(self, bolt11: str) -> str:
            # l402kit calls the wallet synchronously: hop back onto the event loop that owns the sim.
            return asyncio.run_coroutine_threadsafe(agent.pay(bolt11), loop).result(30).preimage

    bounties = await _two_bounties(coordinator, bounty_dir, tmp_path)

    def run() -> tuple[list[tuple[str, int, bytes]], list[tuple[str, int, dict]], dict]:
        downloads, submits = [], []
        with L402Client(wallet=SimWallet(), budget_sats=200) as client:
            for bounty_id in bounties:
                for _ in range(2):  # the second download reuses its cached token
                    r = client.get(url(server, f"/api/v1/bounties/{bounty_id}/package"))
                    downloads.append((bounty_id, r.status_code, r.content))
                r = client.post(url(server, f"/api/v1/bounties/{bounty_id}/submissions"),
                                json={"diff": diff_text(), "claimed_score": 0.0})
                submits.append((bounty_id, r.status_code, r.json()))
            return downloads, submits, client.spending_report().__dict__

    downloads, submits, report = await asyncio.to_thread(run)
    for bounty_id, status, content in downloads:
        assert status == 200 and hashlib.sha256(content).hexdigest() == bounties[bounty_id]
    for bounty_id, status, body in submits:
        assert status == 202, body
    assert await _submissions_of(coordinator) == {body["id"]: b for b, _, body in submits}
    assert report["total"] == 2 * (21 + 5)  # it read price_sats from our 402 bodies; no repeat payment


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
