"""Pruning unpaid L402 challenges leaves the start-up reconciliation and the re-adoption of a
lost paid token working (coordinator/reconcile.py, l402/unpaid.py), in the real app."""

from __future__ import annotations

import asyncio

import aiohttp

from l402tui.coordinator.http_common import GATE
from tests.coordinator.conftest import url


async def _wait_expired(net, payment_hashes) -> None:
    node = net.node("coordinator")
    for _ in range(100):
        if {(await node.lookup_invoice(p)).state.value for p in payment_hashes} == {"EXPIRED"}:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the invoices did not expire")


async def test_after_pruning_others_a_lost_paid_token_is_still_found_and_readopted(server, coordinator, net,
                                                                                    bounty_dir):
    from l402tui.coordinator.reconcile import find_discrepancies, reconcile_at_start

    gate = server.app[GATE]
    gate.invoice_expiry_s = 2
    gate.unpaid.grace_s = 0.0
    bounty_id = (await coordinator.create_bounty(bounty_dir, self_funded=True))["bounty"]["id"]
    path = url(server, f"/api/v1/bounties/{bounty_id}/package")
    async with aiohttp.ClientSession() as session:
        async with session.get(path) as r:
            paid = await r.json()
        payment = await net.node("agent-1").pay(paid["invoice"])
        auth = f"L402 {paid['macaroon']}:{payment.preimage}"
        unpaid = []
        for _ in range(4):
            async with session.get(path) as r:
                assert r.status == 402
                unpaid.append((await r.json())["payment_hash"])
        await _wait_expired(net, unpaid)
        assert await gate.unpaid.prune() == 4
        assert await coordinator.store.scalar("SELECT COUNT(*) FROM l402_root_keys WHERE payment_hash IN "
                                              "(?, ?, ?, ?)", unpaid) == 0
        # Nothing the pruning did looks like lost money to the reconciliation.
        assert await find_discrepancies(coordinator.store, coordinator.backend) == []
        async with session.get(path, headers={"Authorization": auth}) as r:
            assert r.status == 200

        # The paid token's rows go with a lost WAL: it is found at start and re-adopted when shown.
        async with coordinator.store.transaction() as txn:
            await txn.execute("DELETE FROM invoices WHERE payment_hash = ?", (paid["payment_hash"],))
            await txn.execute("DELETE FROM l402_root_keys WHERE payment_hash = ?", (paid["payment_hash"],))
        found = await reconcile_at_start(coordinator)
        assert [d.kind for d in found] == ["l402_token_lost"]
        gate.authority._verified.clear()
        gate.authority.keys._cache.clear()
        async with session.get(path, headers={"Authorization": auth}) as r:
            assert r.status == 200, await r.text()
        # A pass after that keeps the re-adopted token: its invoice row is SETTLED, never a candidate.
        assert await gate.unpaid.prune() == 0
        assert await coordinator.store.scalar("SELECT COUNT(*) FROM l402_root_keys WHERE payment_hash = ?",
                                              (paid["payment_hash"],)) == 1
