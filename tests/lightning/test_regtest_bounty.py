"""The coordinator's money story on real lightningd + bitcoind: a sponsor funds a bounty by
hold invoice, an agent pays the L402 fee and a stake, the accepted submission is paid by
keysend (80 %), the holdback (20 %) after the stability check, the stake refunded, and the
rest of the pool refunded to the sponsor at the close.  Rows are written as
coordinator/service.py writes them (tests/payouts/payouts_world.py); every payment is real.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import time

import pytest

from l402tui.coordinator import ledger, payouts
from l402tui.lightning.backend import InvoiceState, PaymentState
from l402tui.lightning.cln import ClnBackend
from l402tui.store import Store
from tests.payouts.payouts_world import make_config, spec_summary

pytestmark = pytest.mark.regtest
SAT = 1000


async def _held(backend: ClnBackend, payment_hash: str, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while (await backend.lookup_invoice(payment_hash)).state is not InvoiceState.ACCEPTED:
        assert asyncio.get_running_loop().time() < deadline, f"hold {payment_hash[:8]} never ACCEPTED"
        await asyncio.sleep(0.05)


async def _hold_row(store, coordinator, kind, amount_msat, bounty_id, submission_id=None) -> tuple[str, str]:
    preimage = os.urandom(32)
    payment_hash = hashlib.sha256(preimage).hexdigest()
    inv = await coordinator.create_hold_invoice(payment_hash, amount_msat, kind)
    t = time.time()
    async with store.transaction() as txn:
        await txn.insert("invoices", {
            "payment_hash": payment_hash, "kind": kind, "bolt11": inv.bolt11, "amount_msat": amount_msat,
            "is_hold": 1, "status": "OPEN", "preimage": preimage.hex(), "bounty_id": bounty_id,
            "submission_id": submission_id, "expires_at": inv.expires_at, "created_at": t, "updated_at": t})
    return payment_hash, inv.bolt11


async def test_bounty_story_on_real_nodes(regtest_network, tmp_path):
    nodes = regtest_network.nodes
    coordinator, sponsor, agent = (ClnBackend(nodes[n].rpc_path) for n in ("coordinator", "sponsor", "agent"))
    cfg = make_config(tmp_path)
    store = await Store.open(cfg.db_path)
    agent_before = (await agent.status()).balance_msat
    sponsor_before = (await sponsor.status()).balance_msat
    try:
        # 1. Funding by hold invoice: the sponsor's HTLC is held, the bounty opens.
        bounty_id, pool = f"b-{os.urandom(3).hex()}", 100_000 * SAT
        fee = int(pool * cfg.get("coordinator.fee_percent") / 100)
        t = time.time()
        async with store.transaction() as txn:
            await txn.insert("bounties", {
                "id": bounty_id, "name": "tiny", "status": "AWAITING_FUNDING",
                "spec_json": json.dumps(spec_summary(target=0.05, stake_sats=1_000)), "pool_msat": pool,
                "funding_mode": "hold", "deadline": t + 3600, "created_at": t, "updated_at": t})
            for i in range(2):
                await txn.insert("heldout_commitments", {
                    "bounty_id": bounty_id, "set_index": i, "set_name": f"s{i}", "manifest_json": "[]",
                    "salt_hex": os.urandom(16).hex(), "commitment_hex": os.urandom(32).hex()})
        funding_hash, bolt11 = await _hold_row(store, coordinator, "funding", pool + fee, bounty_id)
        async with store.transaction() as txn:
            await txn.execute("UPDATE bounties SET funding_payment_hash = ? WHERE id = ?", (funding_hash, bounty_id))
        assert (await sponsor.pay(bolt11, timeout_s=1.0)).state is PaymentState.PENDING
        await _held(coordinator, funding_hash)
        async with store.transaction() as txn:
            await txn.execute("UPDATE invoices SET status = 'ACCEPTED' WHERE payment_hash = ?", (funding_hash,))
            await txn.execute("UPDATE bounties SET status = 'OPEN' WHERE id = ?", (bounty_id,))

        # 2. The L402 fee: a plain invoice; the agent's preimage is its proof of payment.
        l402 = await coordinator.create_invoice(21 * SAT, f"L402 download {bounty_id}")
        paid = await agent.pay(l402.bolt11)
        assert hashlib.sha256(bytes.fromhex(paid.preimage)).hexdigest() == l402.payment_hash
        assert (await coordinator.lookup_invoice(l402.payment_hash)).state is InvoiceState.SETTLED

        # 3. A submission with a stake held by hold invoice, paid out by keysend to the agent's node.
        sub = f"s-{os.urandom(4).hex()}"
        agent_id = (await agent.status()).node_id
        async with store.transaction() as txn:
            await txn.insert("submissions", {
                "id": sub, "bounty_id": bounty_id, "token_id": "agent", "status": "QUEUED", "diff": "--- a\n",
                "payout_destination": agent_id, "created_at": time.time(), "updated_at": time.time()})
        stake_hash, bolt11 = await _hold_row(store, coordinator, "stake", 1_000 * SAT, bounty_id, sub)
        async with store.transaction() as txn:
            await txn.execute("UPDATE submissions SET stake_payment_hash = ? WHERE id = ?", (stake_hash, sub))
        await agent.pay(bolt11, timeout_s=1.0)
        await _held(coordinator, stake_hash)
        async with store.transaction() as txn:
            await txn.execute("UPDATE invoices SET status = 'ACCEPTED' WHERE payment_hash = ?", (stake_hash,))

        # 4. Accepted at 2 % against a 5 % target: the funding hold settles, 80 % goes out now.
        verdict = {"decision": "ACCEPTED", "improvement": 0.02, "metrics": {"error": 0.98}, "reasons": [],
                   "improvement_vs_baseline": 0.02}
        async with store.transaction() as txn:
            await txn.execute("UPDATE submissions SET status = 'ACCEPTED', verdict_json = ? WHERE id = ?",
                              (json.dumps(verdict), sub))
        await payouts.on_verdict(store, coordinator, cfg, sub)
        summary = await payouts.on_accepted(store, coordinator, cfg, sub)
        assert [p["status"] for p in summary["payments"]] == ["COMPLETE"]
        assert (await coordinator.lookup_invoice(funding_hash)).state is InvoiceState.SETTLED
        assert (await coordinator.lookup_invoice(stake_hash)).state is InvoiceState.CANCELED  # stake refunded
        first = summary["payments"][0]["amount_msat"]
        assert summary["held_back_msat"] > 0 and first == 4 * summary["held_back_msat"]

        # 5. The holdback is released after the stability re-evaluation holds.
        later = time.time() + cfg.get("coordinator.holdback_seconds") + 1
        await payouts.tick(store, coordinator, cfg, at=later)
        async with store.transaction() as txn:
            await txn.execute("UPDATE evaluations SET status = 'DONE', metrics_json = ?, finished_at = ? "
                              "WHERE submission_id = ? AND kind = 'stability' AND status = 'QUEUED'",
                              (json.dumps({"error": 0.98}), time.time(), sub))
            await txn.execute("UPDATE evaluations SET status = 'DONE', metrics_json = ?, finished_at = ? "
                              "WHERE submission_id IS NULL AND kind = 'stability' AND status = 'QUEUED' "
                              "AND bounty_id = ?", (json.dumps({"error": 1.0}), time.time(), bounty_id))
        await payouts.tick(store, coordinator, cfg, at=later)
        status = await store.fetchone("SELECT status FROM submissions WHERE id = ?", (sub,))
        assert status["status"] == "PAID_FULL"

        # 6. The close: what is left of the pool is refunded to the sponsor's own invoice.
        async with store.transaction() as txn:
            await txn.execute("UPDATE bounties SET status = 'CLOSED' WHERE id = ?", (bounty_id,))
        await payouts.on_bounty_closed(store, coordinator, cfg, bounty_id)
        owed = await store.fetchone("SELECT amount_msat FROM payments WHERE purpose = 'refund' AND bounty_id = ?",
                                    (bounty_id,))
        refund_inv = await sponsor.create_invoice(owed["amount_msat"], "refund")
        assert (await payouts.claim_refund(store, coordinator, cfg, bounty_id, refund_inv.bolt11))["status"] \
            == "COMPLETE"
        await payouts.tick(store, coordinator, cfg, at=later)
        assert (await store.fetchone("SELECT status FROM bounties WHERE id = ?", (bounty_id,)))["status"] == "SETTLED"

        books = await ledger.bounty_books(store, bounty_id)
        assert books.problems == [] and await ledger.books_balance(store) == []
        assert books.paid + books.refunded + books.fees == books.funded == pool + fee  # to the msat
        # What the real channels say: the agent got its payout, paid 21 sat of fee, its stake back.
        await _settled_channels(regtest_network)
        paid_out = first + summary["held_back_msat"]
        assert (await agent.status()).balance_msat == agent_before - 21 * SAT + paid_out
        assert (await sponsor.status()).balance_msat == sponsor_before - (pool + fee) + owed["amount_msat"]
    finally:
        await store.close()
        for backend in (coordinator, sponsor, agent):
            await backend.close()


async def _settled_channels(net, timeout: float = 30) -> None:
    from tests.lightning.regtest import wait_until

    def idle() -> bool:
        return all(not c.get("htlcs") for n in ("sponsor", "agent") for c in net.nodes[n].call("listpeerchannels")
                   ["channels"])

    await asyncio.get_running_loop().run_in_executor(None, lambda: wait_until(idle, timeout, "no HTLC in flight"))
