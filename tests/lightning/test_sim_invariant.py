"""Hypothesis: whatever sequence of pay / hold / settle / cancel / expiry / keysend
happens, the simulated network's books balance to the msat after every step."""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from l402tui.lightning.backend import InvoiceState, LightningError, PaymentState
from l402tui.lightning.sim import SimNetwork

NODES = ["coordinator", "sponsor", "agent-1"]
node_ix = st.integers(0, len(NODES) - 1)
amount = st.integers(1, 3_000_000)
OPS = st.one_of(
    st.tuples(st.just("pay"), node_ix, node_ix, amount),
    st.tuples(st.just("hold"), node_ix, node_ix, amount),
    st.tuples(st.just("settle"), st.integers(0, 20)),
    st.tuples(st.just("cancel"), st.integers(0, 20)),
    st.tuples(st.just("keysend"), node_ix, node_ix, amount),
    st.tuples(st.just("mine"), st.integers(1, 6)),
)


async def run_ops(path: Path, ops: list[tuple]) -> None:
    net = SimNetwork.open(path, block_interval_s=3600.0, hold_safety_blocks=2)
    try:
        nodes = [await net.create_node(name, 4_000_000) for name in NODES]
        holds: list[tuple[int, str, str]] = []  # (payee index, preimage, hash)
        for op in ops:
            try:
                if op[0] in ("pay", "hold", "keysend"):
                    _, payee, payer, msat = op
                    if op[0] == "keysend":
                        await nodes[payer].keysend((await nodes[payee].status()).node_id, msat)
                    elif op[0] == "pay":
                        inv = await nodes[payee].create_invoice(msat, "p")
                        await nodes[payer].pay(inv.bolt11)
                    else:
                        preimage = os.urandom(32).hex()
                        h = hashlib.sha256(bytes.fromhex(preimage)).hexdigest()
                        inv = await nodes[payee].create_hold_invoice(h, msat, "h", cltv_delta=8)
                        holds.append((payee, preimage, h))
                        await nodes[payer].pay(inv.bolt11)
                elif op[0] in ("settle", "cancel") and holds:
                    payee, preimage, h = holds[op[1] % len(holds)]
                    if op[0] == "settle":
                        await nodes[payee].settle_hold(preimage)
                    else:
                        await nodes[payee].cancel_hold(h)
                elif op[0] == "mine":
                    await net.mine(op[1])
            except LightningError:
                pass  # self-payment, no balance, settling a cancelled hold... all refused cleanly
            totals = await net.totals()
            assert totals.balanced, (op, totals)
            accepted = [i for n in nodes for i in await n.list_invoices() if i.state is InvoiceState.ACCEPTED]
            pending = [p for n in nodes for p in await n.list_payments() if p.state is PaymentState.PENDING]
            assert len(accepted) == len(pending)
            assert totals.held_msat == sum(p.amount_msat + p.fee_msat for p in pending)
    finally:
        await net.close()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(OPS, min_size=1, max_size=14))
def test_balances_add_up_after_every_step(ops):
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run_ops(Path(tmp) / "simnet.sqlite", ops))
