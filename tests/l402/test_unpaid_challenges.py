"""What unpaid 402 challenges leave behind is bounded in total and expires (l402/unpaid.py).

A gated route on a real loopback socket over a real SQLite store and the simulated network,
with no coordinator following the node: a missed invoice update is the normal case here, so
pruning has to ask the node before it drops anything.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from l402tui.config import load_config
from l402tui.l402.middleware import L402Gate, gated
from l402tui.l402.tokens import RootKeyStore, TokenAuthority
from l402tui.lightning.sim import SimNetwork
from l402tui.store import Store

PATH = "/api/v1/bounties/b1/package"


@gated("download", "download_sats")
async def package(request: web.Request) -> web.Response:
    return web.Response(text="the package")


class Harness:
    """A store, a sim network and a gated app; ``restart`` reopens the store and the app."""

    def __init__(self, tmp_path):
        self.cfg = load_config(tmp_path / "none.toml", env={}).with_overrides({"paths.data_dir": str(tmp_path / "d")})
        self.net: SimNetwork | None = None
        self.store: Store | None = None
        self.srv: TestServer | None = None
        self.gate: L402Gate | None = None

    async def start(self, *, max_unpaid: int = 10_000, invoice_expiry_s: int = 600) -> "Harness":
        if self.net is None:
            self.net = SimNetwork.from_config(self.cfg)
            await self.net.create_node("coordinator", 0, exist_ok=True)
            await self.net.create_node("agent-1", 100_000_000, exist_ok=True)
        self.store = await Store.open(self.cfg.db_path)
        self.gate = L402Gate(self.store, self.net.node("coordinator"), TokenAuthority(RootKeyStore(self.store)),
                             prices_sats={"download_sats": 21}, token_valid_s=3600, per_token_per_minute=1000,
                             per_ip_per_minute=100_000, invoice_expiry_s=invoice_expiry_s,
                             max_unpaid_challenges=max_unpaid)
        self.gate.unpaid.grace_s = 0.0  # the sim shares this machine's clock
        app = web.Application(middlewares=[self.gate.middleware])
        app.router.add_get("/api/v1/bounties/{id}/package", package)
        self.srv = TestServer(app, host="127.0.0.1")
        await self.srv.start_server()
        return self

    async def stop_app(self) -> None:
        await self.srv.close()
        await self.gate.unpaid.close()  # as the app's cleanup does, before the store closes
        await self.store.close()

    async def restart(self, **kw) -> None:
        await self.stop_app()
        await self.start(**kw)

    async def close(self) -> None:
        await self.stop_app()
        await self.net.close()

    async def get(self, session, auth: str | None = None) -> tuple[int, dict, aiohttp.typedefs.LooseHeaders]:
        headers = {"Authorization": auth} if auth else {}
        async with session.get(str(self.srv.make_url(PATH)), headers=headers) as r:
            body = await r.json() if r.content_type == "application/json" else {"text": await r.text()}
            return r.status, body, r.headers

    async def count(self, sql: str, *args) -> int:
        return int(await self.store.scalar(sql, args))

    def sim_invoices(self) -> int:
        conn = sqlite3.connect(self.net.path)
        try:
            return conn.execute("SELECT COUNT(*) FROM invoices WHERE node = 'coordinator'").fetchone()[0]
        finally:
            conn.close()


@pytest.fixture
async def h(tmp_path):
    harness = Harness(tmp_path)
    yield harness
    await harness.close()


async def _wait_expired(h: Harness, payment_hashes: list[str]) -> None:
    """Until the node says every one of these invoices expired (the sim's expiry is whole seconds)."""
    node = h.net.node("coordinator")
    for _ in range(100):
        states = [(await node.lookup_invoice(p)).state.value for p in payment_hashes]
        if set(states) == {"EXPIRED"}:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"invoices did not expire: {states}")


async def test_many_unpaid_challenges_from_anyone_leave_bounded_rows_and_no_events(h):
    await h.start(max_unpaid=5)
    events_before = await h.count("SELECT COUNT(*) FROM events")
    statuses = []
    async with aiohttp.ClientSession() as session:
        for _ in range(20):
            status, body, headers = await h.get(session)
            statuses.append(status)
            if status == 503:
                assert body["error"] == "challenges_full" and int(headers["Retry-After"]) >= 1
                assert body["retry_after_s"] == int(headers["Retry-After"])
            else:
                assert status == 402 and "L402 macaroon=" in headers["WWW-Authenticate"]
    assert statuses == [402] * 5 + [503] * 15
    assert await h.count("SELECT COUNT(*) FROM invoices WHERE kind = 'l402'") == 5
    assert await h.count("SELECT COUNT(*) FROM l402_root_keys") == 5
    assert h.sim_invoices() == 5  # the node was not asked for more invoices either
    assert await h.count("SELECT COUNT(*) FROM events") == events_before  # an unpaid offer is no event


async def test_expired_unpaid_challenges_are_pruned_and_a_paid_one_survives_pruning_and_restart(h):
    await h.start(invoice_expiry_s=2)  # the sim's expiry is whole seconds: at least 1 s to pay
    agent = h.net.node("agent-1")
    async with aiohttp.ClientSession() as session:
        paid = (await h.get(session))[1]
        payment = await agent.pay(paid["invoice"])  # paid before its expiry; nobody tells the store
        offers = [paid] + [(await h.get(session))[1] for _ in range(5)]
        auth = f"L402 {paid['macaroon']}:{payment.preimage}"
        assert (await h.get(session, auth))[0] == 200
        await _wait_expired(h, [o["payment_hash"] for o in offers[1:]])
        assert await h.count("SELECT COUNT(*) FROM invoices WHERE kind = 'l402' AND status = 'OPEN'") == 6

        assert await h.gate.unpaid.prune() == 5
        assert await h.count("SELECT COUNT(*) FROM invoices WHERE kind = 'l402'") == 1
        assert await h.store.scalar("SELECT status FROM invoices WHERE payment_hash = ?",
                                    (paid["payment_hash"],)) == "SETTLED"  # the node's word, written down
        assert await h.count("SELECT COUNT(*) FROM l402_root_keys") == 1
        assert await h.count("SELECT COUNT(*) FROM l402_root_keys WHERE payment_hash = ?", paid["payment_hash"]) == 1
        assert h.sim_invoices() == 1  # the node forgot the expired ones too
        assert await h.gate.unpaid.prune() == 0  # nothing left to prune; the paid one is never looked at again
        status, _, _ = await h.get(session, auth)
        assert status == 200

    await h.restart()
    async with aiohttp.ClientSession() as session:
        status, body, _ = await h.get(session, auth)
        assert status == 200, body
        # An expired unpaid offer's macaroon is now unknown: a fresh challenge, as for any stranger.
        status, body, _ = await h.get(session, f"L402 {offers[1]['macaroon']}:{'00' * 32}")
        assert status == 402


async def test_the_bound_frees_as_offers_expire_and_never_counts_paid_tokens(h):
    await h.start(max_unpaid=2, invoice_expiry_s=2)
    agent = h.net.node("agent-1")
    async with aiohttp.ClientSession() as session:
        first = (await h.get(session))[1]
        payment = await agent.pay(first["invoice"])
        second = (await h.get(session))[1]
        assert (await h.get(session))[0] == 503  # the paid one counts until the store knows it is paid
        await _wait_expired(h, [second["payment_hash"]])
        h.gate.unpaid._last_prune = time.time() - 5  # a pass is allowed again (at most one a second)
        status, third, _ = await h.get(session)
        assert status == 402  # the expired offer was pruned; the paid one is marked paid, not counted
        assert await h.store.scalar("SELECT status FROM invoices WHERE payment_hash = ?",
                                    (first["payment_hash"],)) == "SETTLED"
        assert await h.gate.unpaid.outstanding() == 1
        status, _, _ = await h.get(session, f"L402 {first['macaroon']}:{payment.preimage}")
        assert status == 200
        events = await h.store.fetchall("SELECT kind, subject_id FROM events")
        assert events == [{"kind": "invoice.status", "subject_id": first["payment_hash"]}]


async def test_pruning_keeps_every_offer_while_the_node_cannot_be_asked(h):
    await h.start(invoice_expiry_s=1)
    async with aiohttp.ClientSession() as session:
        offers = [(await h.get(session))[1] for _ in range(3)]
    await _wait_expired(h, [o["payment_hash"] for o in offers])
    node = h.gate.unpaid.backend

    class Away:
        async def lookup_invoice(self, payment_hash):
            from l402tui.lightning.backend import BackendUnavailable
            raise BackendUnavailable("the node is restarting")

        async def forget_expired_invoices(self, hashes):
            return await node.forget_expired_invoices(hashes)

    h.gate.unpaid.backend = Away()
    assert await h.gate.unpaid.prune() == 0
    assert await h.count("SELECT COUNT(*) FROM l402_root_keys") == 3
    h.gate.unpaid.backend = node
    assert await h.gate.unpaid.prune() == 3


async def test_the_routine_pass_runs_behind_the_request_that_ran_into_it(h):
    # A pass may ask the node about up to `batch` invoices: the 402 that falls due for one is
    # not held up by it (only a request that finds the bound full waits, for its own place).
    await h.start()
    started = asyncio.Event()
    release = asyncio.Event()
    real_prune = h.gate.unpaid.prune

    async def slow_prune(now=None):
        started.set()
        await release.wait()
        return await real_prune(now)

    h.gate.unpaid.prune = slow_prune
    h.gate.unpaid._last_prune = float("-inf")
    async with aiohttp.ClientSession() as session:
        status, _, _ = await asyncio.wait_for(h.get(session), 10)
    assert status == 402 and started.is_set()
    release.set()
