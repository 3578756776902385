"""The caller's preimage and hold invoices: every backend takes ``preimage=``, refuses one
that does not hash to the payment hash, and gives it to lightningd only for daywalker90's
``holdinvoice`` (which makes the invoice from it).  The coordinator passes it for funding and
stake holds, so a node running daywalker90's plugin funds a bounty and holds a stake."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from l402tui.config import load_config
from l402tui.coordinator.service import Coordinator
from l402tui.lightning.backend import InvalidRequest, InvoiceNotFound, InvoiceState
from l402tui.lightning.cln import ClnBackend
from l402tui.lightning.sim import SimNetwork
from l402tui.store import Store
from tests.coordinator.conftest import diff_text, make_bounty
from tests.lightning.fake_hold_plugins import BoltzHoldNode, DaywalkerHoldNode
from tests.lightning.fake_lightningd import FakeLightningd, FakeNetwork


def new_preimage() -> tuple[str, str]:
    preimage = os.urandom(32).hex()
    return preimage, hashlib.sha256(bytes.fromhex(preimage)).hexdigest()


class Recorder:
    """Every RPC the backend sends, with its parameters."""

    def __init__(self, backend: ClnBackend) -> None:
        self.calls: list[tuple[str, dict]] = []
        inner = backend._call

        async def call(method, **params):
            self.calls.append((method, params))
            return await inner(method, **params)

        backend._call = call


@pytest.fixture
async def nodes():
    """A coordinator node of a chosen plugin (call ``make(kind)``) and a funded payer."""
    directory = Path(tempfile.mkdtemp(prefix="ln-", dir="/tmp"))
    net = FakeNetwork()
    started: list = []
    backends: list[ClnBackend] = []

    async def make(kind):
        node = kind(net, "coordinator", directory / "coordinator", 0)
        payer = FakeLightningd(net, "agent-1", directory / "agent-1", 10_000_000_000, plugin=None)
        for n in (node, payer):
            await n.start()
            started.append(n)
        receiver, paying = ClnBackend(node.rpc_path, wait_timeout_s=1), ClnBackend(payer.rpc_path)
        receiver.hold_poll_s = 0.05
        backends.extend((receiver, paying))
        return node, receiver, paying

    try:
        yield make
    finally:
        for backend in backends:
            await backend.close()
        for n in started:
            await n.stop()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.mark.parametrize("kind", [BoltzHoldNode, DaywalkerHoldNode], ids=["boltz", "daywalker"])
async def test_preimage_reaches_the_node_only_where_its_plugin_needs_it(nodes, kind):
    node, receiver, _ = await nodes(kind)
    rpc = Recorder(receiver)
    preimage, payment_hash = new_preimage()
    hold = await receiver.create_hold_invoice(payment_hash, 50_000, "stake", preimage=preimage.upper())
    assert hold.payment_hash == payment_hash and hold.state is InvoiceState.OPEN
    sent = [params for method, params in rpc.calls if method == "holdinvoice"]
    assert len(sent) == 1
    # Boltz's hold makes the invoice from the hash: the secret that releases the money stays here.
    assert (sent[0].get("preimage") == preimage) is (kind is DaywalkerHoldNode)
    assert all(preimage not in repr(params).lower() for _, params in rpc.calls) is (kind is BoltzHoldNode)


@pytest.mark.parametrize("kind", [BoltzHoldNode, DaywalkerHoldNode], ids=["boltz", "daywalker"])
async def test_a_preimage_of_another_hash_is_refused_before_anything_is_made(nodes, kind):
    node, receiver, _ = await nodes(kind)
    rpc = Recorder(receiver)
    _, payment_hash = new_preimage()
    for bad in (os.urandom(32).hex(), "zz" * 32, "ab" * 31, ""):
        with pytest.raises(InvalidRequest, match="preimage"):
            await receiver.create_hold_invoice(payment_hash, 1_000, "mismatched", preimage=bad)
    assert not [m for m, _ in rpc.calls if m == "holdinvoice"] and not node.holds
    with pytest.raises(InvoiceNotFound):
        await receiver.lookup_invoice(payment_hash)


async def test_the_sim_checks_the_preimage_and_keeps_it_with_the_caller(tmp_path):
    net = SimNetwork.open(tmp_path / "simnet.sqlite")
    try:
        node = await net.create_node("coordinator", 0)
        preimage, payment_hash = new_preimage()
        with pytest.raises(InvalidRequest, match="preimage"):
            await node.create_hold_invoice(payment_hash, 1_000, "mismatched", preimage=new_preimage()[0])
        with pytest.raises(InvoiceNotFound):
            await node.lookup_invoice(payment_hash)
        hold = await node.create_hold_invoice(payment_hash, 1_000, "stake", preimage=preimage)
        assert hold.is_hold and hold.preimage is None  # the node learns it only when settled
        for file in tmp_path.glob("simnet.sqlite*"):  # the database and its WAL
            data = file.read_bytes()
            assert preimage.encode() not in data and bytes.fromhex(preimage) not in data
    finally:
        await net.close()


async def _until(predicate, what: str, timeout: float = 15.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, f"never {what}"
        await asyncio.sleep(0.05)


async def test_coordinator_funds_and_stakes_on_daywalkers_plugin(nodes, tmp_path):
    node, receiver, payer = await nodes(DaywalkerHoldNode)
    rpc = Recorder(receiver)
    cfg = load_config(tmp_path / "no-config.toml", env={}).with_overrides({"paths.data_dir": str(tmp_path / "d")})
    store = await Store.open(cfg.db_path)
    coord = Coordinator(cfg, store, receiver)
    coord.tick_s = 0.05
    try:
        # Funding: a hold invoice made by daywalker90's plugin from the coordinator's preimage.
        created = await coord.create_bounty(make_bounty(tmp_path / "sponsor", stake_sats=500), self_funded=False)
        bounty_id, funding = created["bounty"]["id"], created["funding"]
        stored = await store.fetchone("SELECT preimage FROM invoices WHERE payment_hash = ?",
                                      (funding["payment_hash"],))
        assert hashlib.sha256(bytes.fromhex(stored["preimage"])).hexdigest() == funding["payment_hash"]
        assert [p["preimage"] for m, p in rpc.calls if m == "holdinvoice"] == [stored["preimage"]]
        assert node.invoices[funding["payment_hash"]]["bolt11"] == funding["invoice"]

        await coord.start()
        await payer.pay(funding["invoice"], timeout_s=0.3)
        await _until(lambda: _status(coord, bounty_id, "OPEN"), "OPEN after the funding hold was accepted")
        assert node.holds[funding["payment_hash"]]["state"] == "ACCEPTED"

        # Stake: the same, and the submission is queued once the plugin holds the payment.
        view = await coord.submit(bounty_id, "tok", diff_text(), payout_destination="agent-1")
        assert view["status"] == "AWAITING_STAKE"
        stake_hash = view["stake"]["payment_hash"]
        assert len([m for m, _ in rpc.calls if m == "holdinvoice"]) == 2
        await payer.pay(view["stake"]["invoice"], timeout_s=0.3)

        async def queued():
            return (await coord.submission(view["id"]))["status"] == "QUEUED"

        await _until(queued, "QUEUED after the stake was held")
        assert node.holds[stake_hash]["state"] == "ACCEPTED"

        # The coordinator can settle what it holds there: its stored preimage is the node's.
        preimage = (await store.fetchone("SELECT preimage FROM invoices WHERE payment_hash = ?",
                                         (stake_hash,)))["preimage"]
        assert (await receiver.settle_hold(preimage, payment_hash=stake_hash)).state is InvoiceState.SETTLED
    finally:
        await coord.stop()
        await store.close()


async def _status(coord: Coordinator, bounty_id: str, status: str) -> bool:
    return (await coord.get_bounty(bounty_id))["status"] == status
