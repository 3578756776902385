"""Third-party L402 clients against a real ``l402tui serve`` (a subprocess on loopback), each
downloading and submitting across two bounties and paying from its own agent node on the
served coordinator's simulated network (the network file is shared between processes):

- Lightning Labs' ``l402sdk`` (Rust, via PyO3): it pays only through a node's HTTP API, so it
  gets CLN's REST interface in front of a sim node (clnrest_fake.py) and runs in its own
  process (l402sdk_child.py);
- ``l402-requests`` (async; one cached token per host, so its second route lives on the fresh
  402 a wrong-route token gets);
- ``l402kit`` (sync, from a worker thread).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
from pathlib import Path

import aiohttp
import pytest

from l402tui.coordinator.client import HttpCoordinatorClient
from l402tui.lightning.sim import SimNetwork
from tests.coordinator.conftest import diff_text, make_bounty
from tests.serve_process import start_serve

pytestmark = pytest.mark.slow
PRICES = {"download": 21, "submit": 5}  # the defaults serve runs with
CHILD = Path(__file__).with_name("l402sdk_child.py")


@pytest.fixture
async def served(tmp_path):
    """(base URL, {bounty id: package sha256} of two open bounties, the serve's sim network,
    its admin macaroon path)."""
    data = tmp_path / "daemon"
    proc, base, macaroon = await asyncio.to_thread(start_serve, data)
    net = None
    try:
        async with HttpCoordinatorClient(base, macaroon_path=macaroon) as admin:
            bounties = {}
            for name in ("first", "second"):
                folder = make_bounty(tmp_path / name)
                # Two different packages, so a client answered with the wrong one is caught.
                (folder / "target" / "NOTES.txt").write_text(f"the {name} bounty\n")
                created = await admin.create_bounty(folder, self_funded=True)
                bounty = created["bounty"]
                assert bounty["status"] == "OPEN", bounty
                bounties[bounty["id"]] = bounty["package"]["sha256"]
            assert len(set(bounties.values())) == 2
        net = SimNetwork.open(data / "simnet.sqlite")
        for agent in ("agent-1", "agent-2", "agent-3"):
            await net.create_node(agent, 100_000_000, exist_ok=True)
        yield base, bounties, net, macaroon
    finally:
        if net is not None:
            await net.close()
        proc.terminate()
        await asyncio.to_thread(proc.wait, 20)


async def _submissions(base: str, bounties: dict[str, str], macaroon) -> dict[str, str]:
    """{submission id: bounty id} as the daemon's operator sees them."""
    async with HttpCoordinatorClient(base, macaroon_path=macaroon) as admin:
        return {s["id"]: s["bounty_id"] for b in bounties for s in await admin.list_submissions(b)}


def _paid_msat(payments) -> int:
    return sum(p.amount_msat for p in payments if p.state.value == "COMPLETE")


async def test_l402sdk_from_its_own_process_with_a_cln_rest_wallet(served, tmp_path):
    from aiohttp.test_utils import TestServer

    from tests.l402.clnrest_fake import clnrest_app

    base, bounties, net, macaroon = served
    wallet_app = clnrest_app(net.node("agent-3"), rune="rune-of-agent-3")
    wallet = TestServer(wallet_app, host="127.0.0.1")
    await wallet.start_server()
    try:
        request = {"clnrest": str(wallet.make_url("")).rstrip("/"), "rune": "rune-of-agent-3", "base": base,
                   "bounty_ids": list(bounties), "diff": diff_text()}
        child = await asyncio.create_subprocess_exec(
            sys.executable, str(CHILD), stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(child.communicate(json.dumps(request).encode()), 120)
        assert child.returncode == 0, err.decode()
    finally:
        await wallet.close()
    result = json.loads(out)

    assert len(result["downloads"]) == 4 and len(result["submits"]) == 2
    for i, answer in enumerate(result["downloads"]):
        assert answer["status"] == 200, answer
        # Its body is text only (the SDK has no bytes accessor): the package is known by its header.
        assert answer["headers"]["x-package-sha256"] == bounties[answer["bounty_id"]]
        first = i % 2 == 0
        assert (answer["paid"], answer["cached_token"]) == (first, not first)
        if first:
            assert answer["receipt"]["amount_sats"] == PRICES["download"]
            receipt = answer["receipt"]
            assert hashlib.sha256(bytes.fromhex(receipt["preimage"])).hexdigest() == receipt["payment_hash"]
    for answer in result["submits"]:
        assert answer["status"] == 202, answer
        assert answer["paid"] and answer["receipt"]["amount_sats"] == PRICES["submit"]
        assert answer["body"]["bounty_id"] == answer["bounty_id"]
    seen = await _submissions(base, bounties, macaroon)
    assert {s["body"]["id"]: s["bounty_id"] for s in result["submits"]}.items() <= seen.items()
    assert result["total_spent"] == 2 * (PRICES["download"] + PRICES["submit"])
    # Four invoices, each paid once by agent-3 through the REST wallet, with the rune it was given.
    assert len(wallet_app["paid"]) == 4
    assert _paid_msat(await net.node("agent-3").list_payments()) == 2 * 26_000


async def test_l402_requests_and_l402kit_against_the_served_coordinator(served, tmp_path):
    from l402_requests import AsyncL402Client, BudgetController
    from l402_requests.wallets import WalletBase
    from l402kit import L402Client
    from l402kit.client import L402Wallet

    base, bounties, net, macaroon = served
    loop = asyncio.get_running_loop()

    class AsyncSimWallet(WalletBase):
        async def pay_invoice(self, bolt11: str) -> str:
            return (await net.node("agent-1").pay(bolt11)).preimage

    class SyncSimWallet(L402Wallet):
        def pay_invoice(self, bolt11: str) -> str:
            return asyncio.run_coroutine_threadsafe(net.node("agent-2").pay(bolt11), loop).result(30).preimage

    submitted: dict[str, str] = {}
    async with AsyncL402Client(wallet=AsyncSimWallet(), budget=BudgetController(max_sats_per_request=100)) as c:
        for bounty_id, sha in bounties.items():
            for _ in range(2):  # the second download reuses its token
                r = await c.get(f"{base}/api/v1/bounties/{bounty_id}/package")
                assert r.status_code == 200, r.text
                assert hashlib.sha256(r.content).hexdigest() == sha
            r = await c.post(f"{base}/api/v1/bounties/{bounty_id}/submissions",
                             json={"diff": diff_text(), "claimed_score": 0.0})
            assert r.status_code == 202, r.text
            submitted[r.json()["id"]] = bounty_id

    def kit() -> tuple[list, dict]:
        answers = []
        with L402Client(wallet=SyncSimWallet(), budget_sats=200) as client:
            for bounty_id in bounties:
                for _ in range(2):
                    r = client.get(f"{base}/api/v1/bounties/{bounty_id}/package")
                    answers.append((bounty_id, r.status_code, hashlib.sha256(r.content).hexdigest()))
                r = client.post(f"{base}/api/v1/bounties/{bounty_id}/submissions",
                                json={"diff": diff_text(), "claimed_score": 0.0})
                answers.append((bounty_id, r.status_code, r.json()))
            return answers, client.spending_report().__dict__

    answers, report = await asyncio.to_thread(kit)
    for bounty_id, status, got in answers:
        if isinstance(got, dict):
            assert status == 202, got
            submitted[got["id"]] = bounty_id
        else:
            assert status == 200 and got == bounties[bounty_id]
    assert report["total"] == 2 * (PRICES["download"] + PRICES["submit"])

    assert await _submissions(base, bounties, macaroon) == submitted
    assert len(submitted) == 4 and set(submitted.values()) == set(bounties)
    for agent in ("agent-1", "agent-2"):  # one download and one submit token per bounty, nothing twice
        assert _paid_msat(await net.node(agent).list_payments()) == 2 * 26_000


async def test_a_wrong_rune_pays_nothing(served):
    """The REST wallet stands for a node: without its rune nothing is paid."""
    from aiohttp.test_utils import TestServer

    from tests.l402.clnrest_fake import clnrest_app

    base, bounties, net, macaroon = served
    wallet_app = clnrest_app(net.node("agent-3"), rune="right")
    wallet = TestServer(wallet_app, host="127.0.0.1")
    await wallet.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{base}/api/v1/bounties/{next(iter(bounties))}/package") as r:
                invoice = (await r.json())["invoice"]
            async with session.post(wallet.make_url("/v1/pay"), json={"bolt11": invoice},
                                    headers={"Rune": "wrong"}) as r:
                assert r.status == 401
    finally:
        await wallet.close()
    assert wallet_app["paid"] == [] and await net.node("agent-3").list_payments() == []
