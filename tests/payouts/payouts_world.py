"""A coordinator's store plus the embedded sim network, with rows written the way
coordinator/service.py writes them (funding hold, stakes, verdicts), so the payouts
module can be driven without the whole service.  Used by the tests, the crash
worker and bench/crash_payouts.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from l402tui.config import Config, load_config
from l402tui.coordinator import ledger
from l402tui.lightning.backend import NoRoute
from l402tui.lightning.sim import SimNetwork, SimNode
from l402tui.store import Store

FAST = {
    "coordinator.payout_retry_base_s": 0.0,
    "coordinator.payout_retry_max_s": 0.0,
    "coordinator.holdback_seconds": 60,
}


def make_config(data_dir: Path, **overrides: Any) -> Config:
    cfg = load_config(data_dir / "none.toml", env={})
    values = {"paths.data_dir": str(data_dir), **FAST}
    values.update({k.replace("__", "."): v for k, v in overrides.items()})
    return cfg.with_overrides(values)


def spec_summary(*, target: float = 0.05, stake_sats: int = 0, holdback_s: float | None = None,
                 heldout_sets: int = 2, stake_keep: float | None = 50.0) -> dict[str, Any]:
    """The fields of coordinator.views.spec_summary that payouts reads (``stake_keep`` None: a
    summary written before reward.rejected_stake_keep_percent existed)."""
    keep = {} if stake_keep is None else {"rejected_stake_keep_percent": stake_keep}
    return {"name": "tiny", "target": {"kind": "relative", "improvement": target, "min_improvement": 0.001},
            "stake_sats": stake_sats, **keep, "holdback_s": holdback_s, "primary_metric": "error",
            "metrics": [{"name": "error", "direction": "minimize", "weight": 1.0}], "heldout_sets": heldout_sets}


@dataclass
class World:
    cfg: Config
    store: Store
    net: SimNetwork
    coordinator: SimNode
    sponsor: SimNode
    agents: dict[str, SimNode] = field(default_factory=dict)
    pubkeys: dict[str, str] = field(default_factory=dict)

    @classmethod
    async def open(cls, data_dir: Path, *, agents: int = 3, create: bool = True, **cfg_overrides: Any) -> "World":
        cfg = make_config(data_dir, **cfg_overrides)
        store = await Store.open(cfg.db_path)
        net = SimNetwork.open(data_dir / "simnet.sqlite", block_interval_s=10.0)
        names = ["coordinator", "sponsor"] + [f"agent-{i}" for i in range(1, agents + 1)]
        if create:
            balances = {"coordinator": 0, "sponsor": 10_000_000_000}
            for name in names:
                await net.create_node(name, balances.get(name, 1_000_000_000), exist_ok=True)
        world = cls(cfg, store, net, net.node("coordinator"), net.node("sponsor"))
        for name in names[2:]:
            world.agents[name] = net.node(name)
        for name in names:
            world.pubkeys[name] = (await net.node(name).status()).node_id
        return world

    async def close(self) -> None:
        await self.store.close()
        await self.net.close()

    async def reopen_store(self) -> None:
        """A restart: a new connection (and so a new payout lock) on the same file."""
        await self.store.close()
        self.store = await Store.open(self.cfg.db_path)

    # -- rows as the service writes them ------------------------------------------------

    async def bounty(self, *, pool_sats: int = 100_000, target: float = 0.05, stake_sats: int = 0,
                     funding: str = "hold", holdback_s: float | None = None, bounty_id: str | None = None,
                     pay: bool = True, stake_keep: float | None = 50.0) -> str:
        bounty_id = bounty_id or f"b-{os.urandom(3).hex()}"
        pool_msat = pool_sats * 1000
        fee_msat = int(pool_msat * self.cfg.get("coordinator.fee_percent") / 100)
        t = time.time()
        preimage = os.urandom(32)
        payment_hash = hashlib.sha256(preimage).hexdigest()
        async with self.store.transaction() as txn:
            await txn.insert("bounties", {
                "id": bounty_id, "name": "tiny", "status": "OPEN" if funding == "self" else "AWAITING_FUNDING",
                "spec_json": json.dumps(spec_summary(target=target, stake_sats=stake_sats, holdback_s=holdback_s,
                                                     stake_keep=stake_keep)),
                "pool_msat": pool_msat, "funding_mode": funding,
                "funding_payment_hash": payment_hash if funding == "hold" else None,
                "deadline": t + 3600, "created_at": t, "updated_at": t})
            for i in range(2):
                await txn.insert("heldout_commitments", {"bounty_id": bounty_id, "set_index": i, "set_name": f"s{i}",
                                                         "manifest_json": "[]", "salt_hex": os.urandom(16).hex(),
                                                         "commitment_hex": os.urandom(32).hex()})
        if funding == "hold":
            inv = await self.coordinator.create_hold_invoice(payment_hash, pool_msat + fee_msat, "fund")
            async with self.store.transaction() as txn:
                await txn.insert("invoices", {
                    "payment_hash": payment_hash, "kind": "funding", "bolt11": inv.bolt11,
                    "amount_msat": pool_msat + fee_msat, "is_hold": 1, "status": "OPEN", "preimage": preimage.hex(),
                    "bounty_id": bounty_id, "expires_at": inv.expires_at, "created_at": t, "updated_at": t})
            if pay:
                await self._pay_in(self.sponsor, inv.bolt11)
                async with self.store.transaction() as txn:
                    await txn.execute("UPDATE invoices SET status = 'ACCEPTED' WHERE payment_hash = ?", (payment_hash,))
                    await txn.execute("UPDATE bounties SET status = 'OPEN' WHERE id = ?", (bounty_id,))
        return bounty_id

    async def submit(self, bounty_id: str, agent: str, *, keysend: bool = False, stake_sats: int = 0,
                     pay_stake: bool = True) -> str:
        sub_id = f"s-{os.urandom(4).hex()}"
        t = time.time()
        stake_hash = None
        async with self.store.transaction() as txn:
            await txn.insert("submissions", {
                "id": sub_id, "bounty_id": bounty_id, "token_id": agent, "status": "QUEUED", "diff": "--- a\n",
                "payout_destination": self.pubkeys[agent] if keysend else None, "created_at": t, "updated_at": t})
        if stake_sats:
            preimage = os.urandom(32)
            stake_hash = hashlib.sha256(preimage).hexdigest()
            inv = await self.coordinator.create_hold_invoice(stake_hash, stake_sats * 1000, "stake")
            async with self.store.transaction() as txn:
                await txn.execute("UPDATE submissions SET stake_payment_hash = ? WHERE id = ?", (stake_hash, sub_id))
                await txn.insert("invoices", {
                    "payment_hash": stake_hash, "kind": "stake", "bolt11": inv.bolt11, "amount_msat": stake_sats * 1000,
                    "is_hold": 1, "status": "OPEN", "preimage": preimage.hex(), "bounty_id": bounty_id,
                    "submission_id": sub_id, "expires_at": inv.expires_at, "created_at": t, "updated_at": t})
            if pay_stake:
                await self._pay_in(self.agents[agent], inv.bolt11)
                async with self.store.transaction() as txn:
                    await txn.execute("UPDATE invoices SET status = 'ACCEPTED' WHERE payment_hash = ?", (stake_hash,))
        return sub_id

    async def verdict(self, sub_id: str, decision: str, improvement: float = 0.0, error: float = 0.9,
                      vs_baseline: float | None = None) -> None:
        """What coordinator/verdict.py records: improvement over the best, over the baseline, medians."""
        verdict = {"decision": decision, "improvement": improvement, "metrics": {"error": error}, "reasons": [],
                   "improvement_vs_baseline": improvement if vs_baseline is None else vs_baseline}
        async with self.store.transaction() as txn:
            await txn.execute("UPDATE submissions SET status = ?, verdict_json = ?, updated_at = ? WHERE id = ?",
                              (decision, json.dumps(verdict), time.time(), sub_id))

    async def finish_stability(self, sub_id: str, metrics: dict[str, Any], status: str = "DONE",
                               baseline: dict[str, Any] | None = None) -> None:
        """Play the evaluation queue: finish the queued stability evaluation of ``sub_id`` and
        any queued baseline re-measurement of its bounty (``baseline`` metrics, default error 1.0)."""
        baseline = {"error": 1.0} if baseline is None else baseline
        async with self.store.transaction() as txn:
            n = await txn.execute("UPDATE evaluations SET status = ?, metrics_json = ?, error = ?, finished_at = ? "
                                  "WHERE submission_id = ? AND kind = 'stability' AND status = 'QUEUED'",
                                  (status, json.dumps(metrics), "crashed" if status == "FAILED" else None,
                                   time.time(), sub_id))
            await txn.execute("UPDATE evaluations SET status = 'DONE', metrics_json = ?, finished_at = ? "
                              "WHERE submission_id IS NULL AND kind = 'stability' AND status = 'QUEUED' AND "
                              "bounty_id = (SELECT bounty_id FROM submissions WHERE id = ?)",
                              (json.dumps(baseline), time.time(), sub_id))
        assert n == 1, f"no queued stability evaluation for {sub_id}"

    async def _pay_in(self, payer: SimNode, bolt11: str) -> None:
        """A sponsor or agent paying a hold invoice; faults injected for payouts are not meant for it."""
        try:
            await payer.pay(bolt11)
        except NoRoute:
            await self.net.clear_failures()
            await payer.pay(bolt11)

    # -- what happened ---------------------------------------------------------------------

    async def sent_to(self, submission_id: str) -> int:
        """Msat the ledger says went to the agent of ``submission_id``: payouts, holdbacks and
        stake refunds that were paid (a cancelled stake hold was never received)."""
        row = await self.store.fetchone(
            "SELECT COALESCE(SUM(amount_msat), 0) AS s FROM ledger_entries WHERE submission_id = ? AND "
            "txn_id LIKE 'sent:%' AND (account = 'paid:' || submission_id OR account = 'unstaked:' || submission_id)",
            (submission_id,))
        return int(row["s"])

    async def received(self, node: str) -> int:
        """Msat node ``node`` received from the coordinator (settled invoices paid by it)."""
        row = await self.net.run(lambda: self.net.ledger.conn.execute(
            "SELECT COALESCE(SUM(amount_received_msat), 0) FROM invoices WHERE node = ? AND paid_by = 'coordinator' "
            "AND state = 'SETTLED'", (node,)).fetchone())
        return int(row[0])

    async def balance(self, node: str) -> int:
        return (await self.net.node(node).status()).balance_msat

    async def books(self, bounty_id: str) -> ledger.BountyBooks:
        return await ledger.bounty_books(self.store, bounty_id)
