"""The simulated network itself: real BOLT11, shared state across processes, crashes,
the block clock, expiry, failure injection, and the money invariant."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from l402tui.config import load_config
from l402tui.lightning import make_backend
from l402tui.lightning._bolt11 import NodeKey, encode_invoice
from l402tui.lightning.backend import (FeeLimitExceeded, InsufficientBalance, InvalidRequest,
                                       InvoiceExpired, InvoiceState, NoRoute, PaymentState,
                                       PaymentTimeout)
from l402tui.lightning.sim import SimNetwork

CHILD = Path(__file__).with_name("sim_child.py")
ROOT = Path(__file__).resolve().parents[2]


def hashpair() -> tuple[str, str]:
    preimage = os.urandom(32).hex()
    return preimage, hashlib.sha256(bytes.fromhex(preimage)).hexdigest()


@pytest.fixture
async def net(tmp_path):
    network = SimNetwork.open(tmp_path / "simnet.sqlite", block_interval_s=3600.0, poll_interval_s=0.02)
    await network.create_node("coordinator", 0)
    await network.create_node("agent-1", 10_000_000)
    yield network
    await network.close()


async def test_invoices_are_real_regtest_bolt11_signed_by_the_node(net):
    import bolt11

    coordinator = net.node("coordinator")
    inv = await coordinator.create_invoice(21_000, "download bounty 7")
    decoded = bolt11.decode(inv.bolt11)  # verifies the signature, recovers the payee
    assert decoded.currency == "bcrt"
    assert decoded.payee == (await coordinator.status()).node_id
    assert decoded.payment_hash == inv.payment_hash
    assert decoded.payment_secret and len(decoded.payment_secret) == 64
    assert decoded.amount_msat == 21_000 and decoded.description == "download bounty 7"
    assert hashlib.sha256(bytes.fromhex(inv.preimage)).hexdigest() == inv.payment_hash


async def test_make_backend_picks_the_configured_sim_node(tmp_path):
    cfg = load_config(tmp_path / "none.toml", env={}).with_overrides({"paths.data_dir": str(tmp_path)})
    net = SimNetwork.from_config(cfg)
    await net.create_node("coordinator", 5_000)
    backend = make_backend(cfg)
    try:
        status = await backend.status()
        assert status.alias == "coordinator" and status.balance_msat == 5_000 and status.backend == "sim"
        with pytest.raises(InvalidRequest, match="no sim node named 'nobody'"):
            await make_backend(cfg, node="nobody").status()
    finally:
        await backend.close()
        await net.close()
    with pytest.raises(InvalidRequest, match="lightning.backend is 'lnd'"):
        make_backend(cfg.with_overrides({"lightning.backend": "lnd"}))
    assert (tmp_path / "simnet.sqlite").exists()


async def test_another_process_paying_shows_up_in_updates(net):
    coordinator = net.node("coordinator")
    inv = await coordinator.create_invoice(50_000, "paid from another process")
    stream = coordinator.updates()
    next_update = asyncio.ensure_future(stream.__anext__())
    await asyncio.sleep(0.05)

    proc = await asyncio.create_subprocess_exec(sys.executable, str(CHILD), str(net.path), "pay", inv.bolt11,
                                                stdout=subprocess.PIPE, cwd=ROOT)
    out, _ = await proc.communicate()
    assert out.decode().strip() == "COMPLETE"

    update = await asyncio.wait_for(next_update, 10)
    assert (update.payment_hash, update.state) == (inv.payment_hash, InvoiceState.SETTLED)
    await stream.aclose()
    assert (await net.totals()).balanced


async def test_two_processes_racing_to_pay_one_invoice_pay_it_once(net):
    await net.create_node("agent-2", 10_000_000)
    inv = await net.node("coordinator").create_invoice(300_000, "only one of you")
    procs = [await asyncio.create_subprocess_exec(sys.executable, str(CHILD), str(net.path), "pay", inv.bolt11, name,
                                                  stdout=subprocess.PIPE, cwd=ROOT)
             for name in ("agent-1", "agent-2")]
    outcomes = sorted([(await p.communicate())[0].decode().strip() for p in procs])
    assert outcomes == ["COMPLETE", "PaymentRejected"]
    assert (await net.node("coordinator").status()).balance_msat == 300_000
    assert (await net.totals()).balanced


async def test_update_stream_starts_when_asked_not_when_first_read(net):
    coordinator, agent = net.node("coordinator"), net.node("agent-1")
    old = await coordinator.create_invoice(1_000, "before the stream")
    await agent.pay(old.bolt11)
    stream = coordinator.updates()
    inv = await coordinator.create_invoice(2_000, "after the stream was asked for")
    await agent.pay(inv.bolt11)  # paid before anyone reads the stream
    update = await asyncio.wait_for(stream.__anext__(), 5)
    assert (update.payment_hash, update.state) == (inv.payment_hash, InvoiceState.SETTLED)
    replay = coordinator.updates(since_seq=0)
    assert (await replay.__anext__()).payment_hash == old.payment_hash
    await stream.aclose()
    await replay.aclose()


async def test_kill_9_mid_hold_keeps_the_htlc_held(net):
    preimage, payment_hash = hashpair()
    proc = subprocess.Popen([sys.executable, str(CHILD), str(net.path), "hold-and-wait", payment_hash],
                            stdout=subprocess.PIPE, cwd=ROOT)
    try:
        assert proc.stdout.readline().decode().strip() == "HELD"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL

    reopened = SimNetwork.open(net.path)
    try:
        coordinator, agent = reopened.node("coordinator"), reopened.node("agent-1")
        held = await coordinator.lookup_invoice(payment_hash)
        assert held.state is InvoiceState.ACCEPTED and held.amount_received_msat == 777_000
        assert (await agent.lookup_payment(payment_hash)).state is PaymentState.PENDING
        totals = await reopened.totals()
        assert totals.balanced and totals.held_msat > 777_000
        await coordinator.settle_hold(preimage)
        assert (await agent.lookup_payment(payment_hash)).state is PaymentState.COMPLETE
        assert (await reopened.totals()).held_msat == 0
    finally:
        await reopened.close()


async def test_block_clock_is_shared_and_follows_wall_time(tmp_path):
    path = tmp_path / "clock.sqlite"
    first = SimNetwork.open(path, block_interval_s=0.2)
    second = SimNetwork.open(path, block_interval_s=999.0)  # the stored clock wins
    assert second.block_interval_s == 0.2
    try:
        start = await first.height()
        await asyncio.sleep(0.45)
        assert await second.height() >= start + 2
        mined = await second.mine(10)
        assert await first.height() >= mined >= start + 12
    finally:
        await first.close()
        await second.close()


async def test_blocks_arriving_by_wall_time_auto_cancel_a_held_htlc(tmp_path):
    net = SimNetwork.open(tmp_path / "fast.sqlite", block_interval_s=0.1, hold_safety_blocks=2, poll_interval_s=0.02)
    try:
        coordinator = await net.create_node("coordinator", 0)
        agent = await net.create_node("agent-1", 1_000_000)
        _, payment_hash = hashpair()
        hold = await coordinator.create_hold_invoice(payment_hash, 10_000, "expires by itself", cltv_delta=4)
        stream = coordinator.updates()
        await agent.pay(hold.bolt11)
        states = [(await asyncio.wait_for(stream.__anext__(), 5)).state for _ in range(2)]
        assert states == [InvoiceState.ACCEPTED, InvoiceState.CANCELED]  # nobody mined or looked it up
        assert (await agent.status()).balance_msat == 1_000_000
        await stream.aclose()
    finally:
        await net.close()


async def test_unpaid_invoice_expires_by_wall_time(net):
    coordinator, agent = net.node("coordinator"), net.node("agent-1")
    inv = await coordinator.create_invoice(1_000, "short-lived", expiry_s=1)
    await asyncio.sleep(1.1)
    with pytest.raises(InvoiceExpired, match="expired"):
        await agent.pay(inv.bolt11)
    assert (await coordinator.lookup_invoice(inv.payment_hash)).state is InvoiceState.EXPIRED
    assert (await agent.status()).balance_msat == 10_000_000


async def test_routing_fees_and_limits(net):
    coordinator, agent = net.node("coordinator"), net.node("agent-1")
    inv = await coordinator.create_invoice(2_000_000, "fee check")
    with pytest.raises(FeeLimitExceeded, match="3000 msat in fees"):
        await agent.pay(inv.bolt11, max_fee_msat=2_999)
    payment = await agent.pay(inv.bolt11, max_fee_msat=3_000)
    assert payment.fee_msat == 1_000 + 2_000_000 * 1_000 // 1_000_000
    big = await coordinator.create_invoice(20_000_000, "too much")
    with pytest.raises(InsufficientBalance, match="needs"):
        await agent.pay(big.bolt11)
    assert (await agent.lookup_payment(big.payment_hash)).state is PaymentState.FAILED
    assert (await net.totals()).fees_msat == 3_000


async def test_injected_failures(net):
    coordinator, agent = net.node("coordinator"), net.node("agent-1")
    inv = await coordinator.create_invoice(10_000, "flaky route")
    await net.inject_failure("coordinator", "no_route", count=1)
    with pytest.raises(NoRoute, match="injected"):
        await agent.pay(inv.bolt11)
    assert (await agent.pay(inv.bolt11)).state is PaymentState.COMPLETE  # the fault was used up

    slow = await coordinator.create_invoice(10_000, "slow route")
    await net.inject_failure("agent-1", "delay", delay_s=0.3)
    with pytest.raises(PaymentTimeout, match="nothing was sent"):
        await agent.pay(slow.bolt11, timeout_s=0.1)
    assert (await coordinator.lookup_invoice(slow.payment_hash)).state is InvoiceState.OPEN
    assert (await agent.pay(slow.bolt11, timeout_s=5)).state is PaymentState.COMPLETE

    await net.inject_failure("agent-1", "insufficient_balance")
    third = await coordinator.create_invoice(10_000, "no liquidity")
    with pytest.raises(InsufficientBalance):
        await agent.pay(third.bolt11)
    await net.clear_failures()
    assert (await agent.pay(third.bolt11)).state is PaymentState.COMPLETE
    with pytest.raises(InvalidRequest, match="unknown fault"):
        await net.inject_failure("agent-1", "gremlins")


async def test_keysend_with_a_chosen_preimage_pays_once(net):
    coordinator, agent = net.node("coordinator"), net.node("agent-1")
    node_id = (await coordinator.status()).node_id
    preimage, payment_hash = hashpair()
    first = await agent.keysend(node_id, 5_000, preimage=preimage)
    again = await agent.keysend(node_id, 5_000, preimage=preimage)  # a retry after a crash
    assert first.payment_hash == again.payment_hash == payment_hash
    assert (await coordinator.status()).balance_msat == 5_000
    assert (await agent.lookup_payment(payment_hash)).state is PaymentState.COMPLETE


async def test_bad_input_gets_clear_errors(net):
    coordinator, agent = net.node("coordinator"), net.node("agent-1")
    with pytest.raises(InvalidRequest, match="not a valid BOLT11"):
        await agent.pay("lnbcrt1garbage")
    with pytest.raises(InvalidRequest, match="payment_hash must be 64 hex"):
        await coordinator.create_hold_invoice("abc", 1_000, "x")
    with pytest.raises(InvalidRequest, match="must exceed the hold safety margin"):
        await coordinator.create_hold_invoice(hashpair()[1], 1_000, "x", cltv_delta=6)
    with pytest.raises(InvalidRequest, match="bad sim node name"):
        net.node("Agent One")
    own = await coordinator.create_invoice(1_000, "self")
    with pytest.raises(InvalidRequest, match="cannot pay its own invoice"):
        await coordinator.pay(own.bolt11)
    mainnet = encode_invoice(key=NodeKey.from_seed("11" * 32), network="bitcoin", payment_hash=hashpair()[1],
                             payment_secret="22" * 32, amount_msat=1_000, description="elsewhere",
                             expiry_s=600, cltv_delta=18, timestamp=int(__import__("time").time()))
    with pytest.raises(InvalidRequest, match="network 'bc'"):
        await agent.pay(mainnet)
    stranger = encode_invoice(key=NodeKey.from_seed("33" * 32), network="regtest", payment_hash=hashpair()[1],
                              payment_secret="44" * 32, amount_msat=1_000, description="not on this net",
                              expiry_s=600, cltv_delta=18, timestamp=int(__import__("time").time()))
    with pytest.raises(NoRoute, match="not a node of this simulated network"):
        await agent.pay(stranger)
