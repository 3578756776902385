"""One adapter, every hold plugin: the cln backend on Boltz's ``hold`` and daywalker90's
``holdinvoice`` (fakes of their documented RPCs, fake_hold_plugins.py), and on our own
plugin loaded under its ``l402tui-hold-*`` prefix in real lightningd (regtest)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from l402tui.lightning.backend import (InvalidRequest, InvalidState, InvoiceNotFound, InvoiceState,
                                       PaymentState, WrongPreimage)
from l402tui.lightning.cln import ClnBackend
from tests.lightning.fake_hold_plugins import BoltzHoldNode, DaywalkerHoldNode
from tests.lightning.fake_lightningd import FakeLightningd, FakeNetwork


def new_preimage() -> tuple[str, str]:
    preimage = os.urandom(32).hex()
    return preimage, hashlib.sha256(bytes.fromhex(preimage)).hexdigest()


@pytest.fixture(params=[BoltzHoldNode, DaywalkerHoldNode], ids=["boltz", "daywalker"])
async def other_plugin(request):
    directory = Path(tempfile.mkdtemp(prefix="ln-", dir="/tmp"))
    net = FakeNetwork()
    node = request.param(net, "coordinator", directory / "coordinator", 0)
    payer_node = FakeLightningd(net, "agent-1", directory / "agent-1", 50_000_000, plugin=None)
    await node.start()
    await payer_node.start()
    receiver, payer = ClnBackend(node.rpc_path, wait_timeout_s=1), ClnBackend(payer_node.rpc_path)
    receiver.hold_poll_s = 0.05
    try:
        yield node, receiver, payer
    finally:
        for backend in (receiver, payer):
            await backend.close()
        await node.stop()
        await payer_node.stop()
        shutil.rmtree(directory, ignore_errors=True)


async def _create(node, receiver, amount=300_000):
    preimage, payment_hash = new_preimage()
    # daywalker90's plugin makes the invoice from the preimage; Boltz's from the hash only.
    extra = {"preimage": preimage} if node.dialect == "daywalker" else {}
    hold = await receiver.create_hold_invoice(payment_hash, amount, "bounty pool", **extra)
    return preimage, payment_hash, hold


async def _wait_state(receiver, payment_hash, state, timeout=5.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while (inv := await receiver.lookup_invoice(payment_hash)).state is not state:
        assert asyncio.get_running_loop().time() < deadline, f"never {state}: {inv.state}"
        await asyncio.sleep(0.02)
    return inv


async def test_detects_the_plugin_by_help(other_plugin):
    node, receiver, _ = other_plugin
    assert (await receiver.hold_dialect()).name == node.dialect


async def test_hold_accepted_settled_and_streamed(other_plugin):
    node, receiver, payer = other_plugin
    stream = receiver.updates()
    preimage, payment_hash, hold = await _create(node, receiver)
    assert hold.is_hold and hold.state is InvoiceState.OPEN and hold.amount_msat == 300_000

    assert (await payer.pay(hold.bolt11, timeout_s=0.3)).state is PaymentState.PENDING
    accepted = await _wait_state(receiver, payment_hash, InvoiceState.ACCEPTED)
    assert accepted.cltv_expiry is not None and accepted.amount_received_msat == 300_000
    seen = []
    while (InvoiceState.ACCEPTED not in seen):
        update = await asyncio.wait_for(stream.__anext__(), 5)
        if update.payment_hash == payment_hash:
            seen.append(update.state)

    with pytest.raises(WrongPreimage):
        await receiver.settle_hold(os.urandom(32).hex(), payment_hash=payment_hash)
    settled = await receiver.settle_hold(preimage)
    assert settled.state is InvoiceState.SETTLED
    assert (await receiver.settle_hold(preimage)).state is InvoiceState.SETTLED  # idempotent
    update = await asyncio.wait_for(stream.__anext__(), 5)
    assert (update.payment_hash, update.state) == (payment_hash, InvoiceState.SETTLED)
    await stream.aclose()
    paid = await payer.lookup_payment(payment_hash)
    assert paid.state is PaymentState.COMPLETE and paid.preimage == preimage
    listed = [i for i in await receiver.list_invoices() if i.payment_hash == payment_hash]
    assert len(listed) == 1 and listed[0].is_hold  # never twice, never as a plain invoice


async def test_hold_cancelled_refunds_and_is_idempotent(other_plugin):
    node, receiver, payer = other_plugin
    preimage, payment_hash, hold = await _create(node, receiver, 200_000)
    await payer.pay(hold.bolt11, timeout_s=0.3)
    await _wait_state(receiver, payment_hash, InvoiceState.ACCEPTED)

    assert (await receiver.cancel_hold(payment_hash)).state is InvoiceState.CANCELED
    assert (await receiver.cancel_hold(payment_hash)).state is InvoiceState.CANCELED
    for _ in range(100):
        if (await payer.lookup_payment(payment_hash)).state is PaymentState.FAILED:
            break
        await asyncio.sleep(0.02)
    assert (await payer.lookup_payment(payment_hash)).state is PaymentState.FAILED
    with pytest.raises(InvalidState):
        await receiver.settle_hold(preimage)


async def test_settling_an_open_hold_invoice_is_refused(other_plugin):
    node, receiver, _ = other_plugin
    preimage, payment_hash, _ = await _create(node, receiver)
    with pytest.raises(InvalidState, match="OPEN"):
        await receiver.settle_hold(preimage)
    with pytest.raises(InvoiceNotFound):
        await receiver.lookup_invoice(new_preimage()[1])


async def test_daywalker_needs_the_preimage_and_says_why():
    directory = Path(tempfile.mkdtemp(prefix="ln-", dir="/tmp"))
    node = DaywalkerHoldNode(FakeNetwork(), "coordinator", directory / "c", 0)
    await node.start()
    receiver = ClnBackend(node.rpc_path)
    try:
        _, payment_hash = new_preimage()
        with pytest.raises(InvalidRequest, match="preimage"):
            await receiver.create_hold_invoice(payment_hash, 1_000, "no preimage")
        with pytest.raises(InvalidRequest, match="preimage"):  # one that does not hash to it
            await receiver.create_hold_invoice(payment_hash, 1_000, "x", preimage=os.urandom(32).hex())
        # Errors this plugin answers as results are raised, not mistaken for invoices.
        answer = await receiver._call("holdinvoice", amount_msat=1, label="l", description="d", cltv=9, bogus=1)
        assert answer == {"code": -1, "message": "Invalid argument: 'bogus'"}
        plain = await receiver.create_invoice(5_000, "a plain invoice the plugin does not hold")
        with pytest.raises(InvoiceNotFound, match="not found"):
            await (await receiver.hold_dialect()).lookup(plain.payment_hash)
        assert (await receiver.lookup_invoice(plain.payment_hash)).is_hold is False
    finally:
        await receiver.close()
        await node.stop()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.mark.regtest
async def test_prefixed_plugin_beside_others_on_real_lightningd(regtest_network):
    """Ours loaded at run time under l402tui-hold-* on the sponsor; the coordinator pays."""
    from l402tui.lightning.cln_hold import OURS_PREFIXED
    from tests.lightning.regtest import REPO

    sponsor = regtest_network.nodes["sponsor"]
    wrapper = regtest_network.root / "cln_holdinvoice_prefixed"
    script = REPO / "l402tui" / "lightning" / "cln_holdinvoice_prefixed.py"
    wrapper.write_text(f"#!/bin/sh\nexec {os.sys.executable} {script} \"$@\"\n")
    wrapper.chmod(0o755)
    sponsor.call("plugin", subcommand="start", plugin=str(wrapper))
    receiver, payer = ClnBackend(sponsor.rpc_path), ClnBackend(regtest_network.nodes["coordinator"].rpc_path)
    try:
        commands = {c["command"].split(" ")[0] for c in sponsor.call("help")["help"]}
        assert set(OURS_PREFIXED.values()) <= commands and "holdinvoice" not in commands
        assert (await receiver.hold_dialect()).name == "l402tui-prefixed"
        stream = receiver.updates()
        preimage, payment_hash = new_preimage()
        hold = await receiver.create_hold_invoice(payment_hash, 400_000, "pool", cltv_delta=40)
        assert (await payer.pay(hold.bolt11, timeout_s=1.0)).state is PaymentState.PENDING
        update = await asyncio.wait_for(stream.__anext__(), 10)
        assert (update.payment_hash, update.state) == (payment_hash, InvoiceState.ACCEPTED)
        assert (await receiver.settle_hold(preimage)).state is InvoiceState.SETTLED
        deadline = asyncio.get_running_loop().time() + 10
        while (paid := await payer.lookup_payment(payment_hash)).state is PaymentState.PENDING:
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.05)
        assert paid.state is PaymentState.COMPLETE and paid.preimage == preimage
        await stream.aclose()
    finally:
        await receiver.close()
        await payer.close()
        sponsor.call("plugin", subcommand="stop", plugin=str(wrapper))
