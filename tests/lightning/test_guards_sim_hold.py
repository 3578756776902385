"""The sim's hold invoices at their expiry edge: a held HTLC that has reached its safety margin
is never settled, even when no sweep has run since the block that reached it."""

from __future__ import annotations

import hashlib
import os

import pytest

from l402tui.lightning.backend import InvalidState, InvoiceState
from l402tui.lightning.sim import SimNetwork


@pytest.fixture
async def net(tmp_path):
    network = SimNetwork.open(tmp_path / "simnet.sqlite", block_interval_s=3600.0, poll_interval_s=0.02)
    await network.create_node("payee")
    await network.create_node("payer", 10_000_000)
    yield network
    await network.close()


async def _held(net: SimNetwork, cltv_delta: int = 40) -> tuple[str, str, int]:
    preimage = os.urandom(32)
    payment_hash = hashlib.sha256(preimage).hexdigest()
    inv = await net.node("payee").create_hold_invoice(payment_hash, 100_000, "hold", cltv_delta=cltv_delta)
    await net.node("payer").pay(inv.bolt11)
    held = await net.node("payee").lookup_invoice(payment_hash)
    assert held.state is InvoiceState.ACCEPTED
    return preimage.hex(), payment_hash, held.cltv_expiry


def _advance_without_sweep(net: SimNetwork, blocks: int) -> None:
    with net.ledger.txn() as c:
        net.ledger._add_meta_int(c, "height_offset", blocks)


@pytest.mark.parametrize("past_margin", [0, 1, 10])
async def test_a_hold_at_or_past_its_safety_margin_is_cancelled_not_settled(net: SimNetwork, past_margin: int):
    preimage, payment_hash, cltv_expiry = await _held(net)
    margin_height = cltv_expiry - net.hold_safety_blocks
    _advance_without_sweep(net, margin_height - await net.height() + past_margin)
    payer_before = (await net.node("payer").status()).balance_msat
    with pytest.raises(InvalidState, match="within 6 blocks of expiry"):
        await net.node("payee").settle_hold(preimage, payment_hash=payment_hash)
    assert (await net.node("payee").lookup_invoice(payment_hash)).state is InvoiceState.CANCELED
    assert (await net.node("payee").status()).balance_msat == 0
    assert (await net.node("payer").status()).balance_msat > payer_before  # refunded


async def test_a_hold_one_block_before_its_margin_still_settles(net: SimNetwork):
    preimage, payment_hash, cltv_expiry = await _held(net)
    _advance_without_sweep(net, cltv_expiry - net.hold_safety_blocks - 1 - await net.height())
    settled = await net.node("payee").settle_hold(preimage, payment_hash=payment_hash)
    assert settled.state is InvoiceState.SETTLED
    assert (await net.node("payee").status()).balance_msat == 100_000


async def test_mining_to_the_safety_margin_cancels_the_held_htlc(net: SimNetwork):
    _, payment_hash, cltv_expiry = await _held(net)
    await net.mine(cltv_expiry - net.hold_safety_blocks - 1 - await net.height())
    assert (await net.node("payee").lookup_invoice(payment_hash)).state is InvoiceState.ACCEPTED
    await net.mine(1)  # the margin is reached: the node fails the HTLC back before it can expire
    assert (await net.node("payee").lookup_invoice(payment_hash)).state is InvoiceState.CANCELED


async def test_a_settled_hold_cannot_be_cancelled(net: SimNetwork):
    preimage, payment_hash, _ = await _held(net)
    await net.node("payee").settle_hold(preimage, payment_hash=payment_hash)
    with pytest.raises(InvalidState, match="already settled"):
        await net.node("payee").cancel_hold(payment_hash)
    assert (await net.node("payee").lookup_invoice(payment_hash)).state is InvoiceState.SETTLED
    assert (await net.node("payee").status()).balance_msat == 100_000


async def test_a_held_invoice_is_paid_once_whoever_pays_it_again(net: SimNetwork):
    """The payer again (a retried request) gets its pending payment back; another payer is
    rejected: the HTLC already held is the only one."""
    from l402tui.lightning.backend import PaymentRejected, PaymentState

    await net.create_node("other", 10_000_000)
    preimage = os.urandom(32)
    payment_hash = hashlib.sha256(preimage).hexdigest()
    inv = await net.node("payee").create_hold_invoice(payment_hash, 100_000, "hold", cltv_delta=40)
    first = await net.node("payer").pay(inv.bolt11)
    after_first = (await net.node("payer").status()).balance_msat
    again = await net.node("payer").pay(inv.bolt11)
    assert again.state is first.state is PaymentState.PENDING and again.payment_hash == payment_hash
    assert (await net.node("payer").status()).balance_msat == after_first
    with pytest.raises(PaymentRejected, match="already paid"):
        await net.node("other").pay(inv.bolt11)
    assert (await net.node("other").status()).balance_msat == 10_000_000
    await net.node("payee").settle_hold(preimage.hex(), payment_hash=payment_hash)
    assert (await net.node("payee").status()).balance_msat == 100_000
    assert (await net.node("payer").lookup_payment(payment_hash)).state is PaymentState.COMPLETE
