"""One contract, every backend: the scenarios the coordinator, L402 and agents rely on.

Runs against the embedded simulated network and against the cln backend talking to
a fake lightningd that runs our real hold-invoice plugin over its stdio protocol.
"""

from __future__ import annotations

import asyncio
import hashlib
import os

import pytest

from l402tui.lightning.backend import (InvalidState, InvoiceState, PaymentRejected, PaymentState,
                                       WrongPreimage)


def new_preimage() -> tuple[str, str]:
    preimage = os.urandom(32).hex()
    return preimage, hashlib.sha256(bytes.fromhex(preimage)).hexdigest()


async def test_plain_invoice_paid_reports_settled_with_preimage(harness):
    await harness.start_updates()
    inv = await harness.receiver.create_invoice(21_000, "download fee")
    assert inv.bolt11.startswith("lnbcrt210n1")
    assert inv.state is InvoiceState.OPEN and not inv.is_hold

    payment = await harness.payer.pay(inv.bolt11)

    assert payment.state is PaymentState.COMPLETE
    assert hashlib.sha256(bytes.fromhex(payment.preimage)).hexdigest() == inv.payment_hash
    looked = await harness.receiver.lookup_invoice(inv.payment_hash)
    assert looked.state is InvoiceState.SETTLED and looked.preimage == payment.preimage
    assert looked.amount_received_msat == 21_000
    update = await harness.wait_update(inv.payment_hash, "SETTLED")
    assert update.amount_msat == 21_000 and not update.is_hold
    assert [i.payment_hash for i in await harness.receiver.list_invoices()].count(inv.payment_hash) == 1


async def test_update_stream_starts_when_asked_for(harness):
    old = await harness.receiver.create_invoice(1_000, "paid before the stream")
    await harness.payer.pay(old.bolt11)
    stream = harness.receiver.updates()
    _, payment_hash = new_preimage()
    hold = await harness.receiver.create_hold_invoice(payment_hash, 60_000, "paid before the first read")
    await harness.payer.pay(hold.bolt11, timeout_s=0.5)
    try:
        # cln may repeat a change made in the same second as the call (paid_at has 1 s
        # resolution); what matters is that nothing after the call is lost.
        update = await asyncio.wait_for(stream.__anext__(), 10)
        while update.payment_hash == old.payment_hash:
            update = await asyncio.wait_for(stream.__anext__(), 10)
        assert (update.payment_hash, update.state) == (payment_hash, InvoiceState.ACCEPTED)
    finally:
        await stream.aclose()


async def test_hold_accepted_then_settled(harness):
    await harness.start_updates()
    preimage, payment_hash = new_preimage()
    before = await harness.payer_balance()
    hold = await harness.receiver.create_hold_invoice(payment_hash, 500_000, "bounty pool", cltv_delta=144)
    assert hold.is_hold and hold.state is InvoiceState.OPEN and hold.preimage is None

    payment = await harness.payer.pay(hold.bolt11, timeout_s=1.0)
    assert payment.state is PaymentState.PENDING
    await harness.wait_update(payment_hash, "ACCEPTED")
    accepted = await harness.receiver.lookup_invoice(payment_hash)
    assert accepted.state is InvoiceState.ACCEPTED
    assert accepted.cltv_expiry is not None and accepted.cltv_expiry > await harness.height()
    assert await harness.payer_balance() < before - 500_000 + 1  # funds are locked in the HTLC

    settled = await harness.receiver.settle_hold(preimage)
    assert settled.state is InvoiceState.SETTLED and settled.preimage == preimage
    await harness.wait_update(payment_hash, "SETTLED")
    paid = await harness.payment_outcome(payment_hash)
    assert paid.state is PaymentState.COMPLETE and paid.preimage == preimage
    assert await harness.payer_balance() == before - 500_000 - paid.fee_msat
    if harness.kind == "cln":
        answers = harness.hook_answers(payment_hash)
        assert [a["result"] for a in answers] == ["resolve"]
        assert answers[0]["payment_key"] == preimage


async def test_hold_accepted_then_cancelled_refunds_payer(harness):
    await harness.start_updates()
    _, payment_hash = new_preimage()
    before = await harness.payer_balance()
    hold = await harness.receiver.create_hold_invoice(payment_hash, 300_000, "stake")
    assert (await harness.payer.pay(hold.bolt11, timeout_s=1.0)).state is PaymentState.PENDING
    await harness.wait_update(payment_hash, "ACCEPTED")

    cancelled = await harness.receiver.cancel_hold(payment_hash)
    assert cancelled.state is InvoiceState.CANCELED
    await harness.wait_update(payment_hash, "CANCELED")
    failed = await harness.payment_outcome(payment_hash)
    assert failed.state is PaymentState.FAILED
    assert await harness.payer_balance() == before
    assert (await harness.receiver.cancel_hold(payment_hash)).state is InvoiceState.CANCELED  # idempotent
    if harness.kind == "cln":
        assert [a["result"] for a in harness.hook_answers(payment_hash)] == ["fail"]


async def test_hold_with_wrong_amount_is_failed_back(harness):
    _, payment_hash = new_preimage()
    before = await harness.payer_balance()
    hold = await harness.receiver.create_hold_invoice(payment_hash, 400_000, "stake")

    with pytest.raises(PaymentRejected):
        await harness.send_htlc(hold.bolt11, 399_000)

    assert (await harness.receiver.lookup_invoice(payment_hash)).state is InvoiceState.OPEN
    assert await harness.payer_balance() == before
    if harness.kind == "cln":
        assert [a["result"] for a in harness.hook_answers(payment_hash)] == ["fail"]


async def test_unknown_hash_is_passed_on_to_plain_invoices(harness):
    # With hold invoices outstanding, a plain invoice still settles: the plugin lets
    # HTLCs it does not own continue to lightningd's own invoice handling.
    _, hold_hash = new_preimage()
    await harness.receiver.create_hold_invoice(hold_hash, 100_000, "unrelated hold")
    inv = await harness.receiver.create_invoice(7_000, "plain")

    payment = await harness.payer.pay(inv.bolt11)

    assert payment.state is PaymentState.COMPLETE
    assert (await harness.receiver.lookup_invoice(inv.payment_hash)).state is InvoiceState.SETTLED
    assert (await harness.receiver.lookup_invoice(hold_hash)).state is InvoiceState.OPEN
    if harness.kind == "cln":
        assert [a["result"] for a in harness.hook_answers(inv.payment_hash)] == ["continue"]


async def test_hold_auto_cancels_a_safety_margin_before_htlc_expiry(harness):
    await harness.start_updates()
    preimage, payment_hash = new_preimage()
    before = await harness.payer_balance()
    cltv = harness.safety_blocks + 8
    hold = await harness.receiver.create_hold_invoice(payment_hash, 200_000, "short hold", cltv_delta=cltv)
    await harness.payer.pay(hold.bolt11, timeout_s=1.0)
    await harness.wait_update(payment_hash, "ACCEPTED")
    accepted = await harness.receiver.lookup_invoice(payment_hash)
    margin_height = accepted.cltv_expiry - harness.safety_blocks

    await harness.mine(margin_height - await harness.height() - 1)
    assert (await harness.receiver.lookup_invoice(payment_hash)).state is InvoiceState.ACCEPTED

    await harness.mine(1)
    await harness.wait_update(payment_hash, "CANCELED")
    assert (await harness.receiver.lookup_invoice(payment_hash)).state is InvoiceState.CANCELED
    assert (await harness.payment_outcome(payment_hash)).state is PaymentState.FAILED
    assert await harness.payer_balance() == before
    with pytest.raises(InvalidState):
        await harness.receiver.settle_hold(preimage)


async def test_restart_with_held_htlc_replayed_settles_once(harness):
    preimage, payment_hash = new_preimage()
    before = await harness.payer_balance()
    hold = await harness.receiver.create_hold_invoice(payment_hash, 250_000, "pool")
    await harness.payer.pay(hold.bolt11, timeout_s=1.0)
    assert (await harness.receiver.lookup_invoice(payment_hash)).state is InvoiceState.ACCEPTED

    await harness.restart_receiver()  # cln: the plugin dies; lightningd replays the HTLC

    held = await harness.receiver.lookup_invoice(payment_hash)
    assert held.state is InvoiceState.ACCEPTED and held.amount_received_msat == 250_000
    first = await harness.receiver.settle_hold(preimage)
    again = await harness.receiver.settle_hold(preimage)
    assert first.state is again.state is InvoiceState.SETTLED
    assert again.amount_received_msat == 250_000
    paid = await harness.payment_outcome(payment_hash)
    assert paid.state is PaymentState.COMPLETE
    assert await harness.payer_balance() == before - 250_000 - paid.fee_msat
    if harness.kind == "cln":
        assert [a["result"] for a in harness.hook_answers(payment_hash)] == ["resolve"]


async def test_settle_with_wrong_preimage_is_refused(harness):
    preimage, payment_hash = new_preimage()
    hold = await harness.receiver.create_hold_invoice(payment_hash, 150_000, "stake")
    await harness.payer.pay(hold.bolt11, timeout_s=1.0)
    wrong = os.urandom(32).hex()

    with pytest.raises(WrongPreimage, match="not the payment hash"):
        await harness.receiver.settle_hold(wrong, payment_hash=payment_hash)
    with pytest.raises(WrongPreimage, match="matches no"):
        await harness.receiver.settle_hold(wrong)

    assert (await harness.receiver.lookup_invoice(payment_hash)).state is InvoiceState.ACCEPTED
    assert (await harness.receiver.settle_hold(preimage)).state is InvoiceState.SETTLED


async def test_keysend_credits_the_destination(harness):
    await harness.start_updates()
    node_id = (await harness.receiver.status()).node_id
    before = await harness.payer_balance()

    payment = await harness.payer.keysend(node_id, 12_345)

    assert payment.state is PaymentState.COMPLETE
    assert await harness.payer_balance() == before - 12_345 - payment.fee_msat
    update = await harness.wait_update(payment.payment_hash, "SETTLED")
    assert update.amount_msat == 12_345


async def test_paying_twice_never_pays_twice(harness):
    inv = await harness.receiver.create_invoice(9_000, "once")
    first = await harness.payer.pay(inv.bolt11)
    balance = await harness.payer_balance()
    second = await harness.payer.pay(inv.bolt11)
    assert second.state is PaymentState.COMPLETE and second.preimage == first.preimage
    assert await harness.payer_balance() == balance
