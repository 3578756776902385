"""The hold-invoice plugin over its real stdio protocol, beyond the shared contract:
manifest, payment-secret / CLTV / MPP checks, persistence across restarts, the
waitanyholdinvoice stream, and the cln backend's errors when things are missing."""

from __future__ import annotations

import asyncio
import hashlib
import os

import pytest

from l402tui.config import load_config
from l402tui.lightning import make_backend
from l402tui.lightning._bolt11 import decode_invoice
from l402tui.lightning.backend import BackendUnavailable, InvoiceState
from l402tui.lightning.cln import ClnBackend
from tests.lightning.cln_harness import ClnHarness
from tests.lightning.fake_lightningd import RpcFail


def hashpair() -> tuple[str, str]:
    preimage = os.urandom(32).hex()
    return preimage, hashlib.sha256(bytes.fromhex(preimage)).hexdigest()


@pytest.fixture
async def cln(tmp_path):
    h = await ClnHarness(tmp_path).setup()
    yield h
    await h.close()


async def test_manifest_declares_rpcs_hook_and_block_subscription(cln):
    node = cln.receiver_node
    assert {"holdinvoice", "holdinvoicesettle", "holdinvoicecancel", "holdinvoicelookup", "listholdinvoices",
            "waitanyholdinvoice"} <= node.plugin_methods
    assert node.plugin_hooks == {"htlc_accepted"}
    assert "block_added" in node.plugin_subscriptions
    assert any("l402tui hold invoices" in line for line in node.plugin_logs)


async def test_wrong_payment_secret_and_short_cltv_are_failed(cln):
    _, payment_hash = hashpair()
    hold = await cln.receiver.create_hold_invoice(payment_hash, 100_000, "checks", cltv_delta=40)
    inv = decode_invoice(hold.bolt11)
    assert inv.payee == (await cln.receiver.status()).node_id  # signinvoice signed it as the node
    payer = cln.payer_node
    with pytest.raises(RpcFail):
        await payer.send_htlc(inv.payee, payment_hash, 100_000, cltv_delta=40, payment_secret="00" * 32)
    with pytest.raises(RpcFail):
        await payer.send_htlc(inv.payee, payment_hash, 100_000, cltv_delta=39, payment_secret=inv.payment_secret)
    assert [a["result"] for a in cln.hook_answers(payment_hash)] == ["fail", "fail"]
    assert any("wrong payment secret" in line for line in cln.receiver_node.plugin_logs)
    assert any("less than 40 blocks away" in line for line in cln.receiver_node.plugin_logs)
    assert (await cln.receiver.lookup_invoice(payment_hash)).state is InvoiceState.OPEN


async def test_multi_part_payment_is_held_until_complete_and_settled_together(cln):
    preimage, payment_hash = hashpair()
    hold = await cln.receiver.create_hold_invoice(payment_hash, 90_000, "mpp")
    inv = decode_invoice(hold.bolt11)
    parts = [asyncio.create_task(cln.payer_node.send_htlc(inv.payee, payment_hash, msat, cltv_delta=144,
                                                          payment_secret=inv.payment_secret, total_msat=90_000))
             for msat in (40_000, 50_000)]
    for _ in range(100):
        if (await cln.receiver.lookup_invoice(payment_hash)).state is InvoiceState.ACCEPTED:
            break
        await asyncio.sleep(0.02)
    accepted = await cln.receiver.lookup_invoice(payment_hash)
    assert accepted.state is InvoiceState.ACCEPTED and accepted.amount_received_msat == 90_000
    assert not any(p.done() for p in parts)

    await cln.receiver.settle_hold(preimage)
    results = await asyncio.gather(*parts)
    assert all(r["payment_preimage"] == preimage for r in results)
    assert [a["result"] for a in cln.hook_answers(payment_hash)] == ["resolve", "resolve"]


async def test_incomplete_multi_part_payment_times_out_and_stays_payable(tmp_path):
    h = ClnHarness(tmp_path)
    h.receiver_node.plugin_options["l402tui-hold-mpp-timeout"] = 1
    await h.setup()
    try:
        _, payment_hash = hashpair()
        hold = await h.receiver.create_hold_invoice(payment_hash, 90_000, "half paid")
        inv = decode_invoice(hold.bolt11)
        with pytest.raises(RpcFail):
            await asyncio.wait_for(h.payer_node.send_htlc(inv.payee, payment_hash, 40_000, cltv_delta=144,
                                                          payment_secret=inv.payment_secret, total_msat=90_000), 10)
        assert h.hook_answers(payment_hash) == [{"result": "fail", "failure_message": "0017"}]
        assert (await h.receiver.lookup_invoice(payment_hash)).state is InvoiceState.OPEN
        assert (await h.payer.pay(hold.bolt11, timeout_s=0.5)).state.value == "PENDING"
        assert (await h.receiver.lookup_invoice(payment_hash)).state is InvoiceState.ACCEPTED
    finally:
        await h.close()


async def test_state_survives_plugin_restart_and_the_stream_continues(cln):
    _, payment_hash = hashpair()
    await cln.receiver.create_hold_invoice(payment_hash, 10_000, "persisted")
    before = await cln.receiver_node.dispatch("listholdinvoices", {})
    await cln.restart_receiver()
    after = await cln.receiver_node.dispatch("listholdinvoices", {})
    assert [r["payment_hash"] for r in after["holdinvoices"]] == [payment_hash]
    assert after["lastindex"] == before["lastindex"] >= 1
    assert "payment_secret" not in after["holdinvoices"][0]  # never leaves the plugin

    with pytest.raises(RpcFail) as timed_out:
        await cln.receiver_node.dispatch("waitanyholdinvoice", {"lastindex": after["lastindex"], "timeout": 0.2})
    assert timed_out.value.error["code"] == 904
    waiting = asyncio.create_task(cln.receiver_node.dispatch("waitanyholdinvoice",
                                                             {"lastindex": after["lastindex"], "timeout": 5}))
    await asyncio.sleep(0.1)
    await cln.receiver.cancel_hold(payment_hash)
    changed = await waiting
    assert changed["state"] == "CANCELED" and changed["updated_index"] == after["lastindex"] + 1


async def test_cln_backend_explains_missing_pieces(cln, tmp_path):
    bare = ClnBackend(cln.payer_node.rpc_path)  # this node runs without our plugin
    try:
        with pytest.raises(BackendUnavailable, match="--plugin="):
            await bare.create_hold_invoice(hashpair()[1], 1_000, "no plugin")
    finally:
        await bare.close()
    gone = ClnBackend(tmp_path / "no-such-rpc")
    try:
        with pytest.raises(BackendUnavailable, match="cannot reach lightningd"):
            await gone.status()
    finally:
        await gone.close()
    cfg = load_config(tmp_path / "none.toml", env={}).with_overrides({"lightning.backend": "cln"})
    with pytest.raises(BackendUnavailable, match="cln_rpc_path is empty"):
        make_backend(cfg)


async def test_update_stream_reconnects_after_lightningd_goes_away(cln):
    stream = cln.receiver.updates()
    first = asyncio.ensure_future(stream.__anext__())
    await asyncio.sleep(0.3)  # the stream is waiting in waitanyinvoice / waitanyholdinvoice
    await cln.receiver_node.restart_rpc(down_for_s=0.5)
    inv = await cln.receiver.create_invoice(4_000, "after the restart")
    await cln.payer.pay(inv.bolt11)
    try:
        update = await asyncio.wait_for(first, 15)
        assert (update.payment_hash, update.state) == (inv.payment_hash, InvoiceState.SETTLED)
    finally:
        await stream.aclose()
