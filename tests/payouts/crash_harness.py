"""kill -9 a real coordinator process at random points of the pay path, restart it, and
check that nobody was paid twice, no submission was lost and the ledger balances.
Shared by tests/payouts/test_crash_payouts.py and bench/crash_payouts.py.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from payouts_world import World

from l402tui.coordinator import ledger
from l402tui.coordinator.payout_math import cumulative_split, verdict_level

WORKER = Path(__file__).with_name("crash_worker.py")
ROOT = Path(__file__).resolve().parents[2]
AGENTS = ["agent-1", "agent-2", "agent-3"]


@dataclass
class CrashRun:
    kills: int = 0
    restarts: int = 0
    seconds: float = 0.0
    double_payments: int = 0
    lost_submissions: int = 0
    problems: list[str] = field(default_factory=list)
    sends_on_node: int = 0
    payments_complete: int = 0  # payout rows (80 %) COMPLETE
    payments_owed: int = 0  # payout rows (a submission accepted after the pool is spent has none)
    kills_with_send_in_flight: int = 0  # a row was PENDING: killed between the record and the outcome
    kills_mid_payouts: int = 0  # some but not all payouts done when killed
    kills_stake_settled_unbooked: int = 0  # a stake hold settled on the node, still ACCEPTED in the store
    stakes_resolved: int = 0  # REJECTED stakes kept in part and their rest paid back


REJECTED = 2  # staked submissions rejected: half of each stake kept, the rest paid back
STAKE_SATS = 1_000


async def setup(data_dir: Path, submissions: int, seed: int) -> None:
    """A funded bounty with ``submissions`` ACCEPTED submissions (each a new best over the baseline),
    half paid by keysend, half by claim, and REJECTED staked ones whose stakes are settled in part."""
    rng = random.Random(seed)
    w = await World.open(data_dir)
    try:
        b = await w.bounty(pool_sats=100_000, holdback_s=3600, stake_sats=STAKE_SATS)
        level = 0.0
        for i in range(submissions):
            agent = AGENTS[i % len(AGENTS)]
            sub = await w.submit(b, agent, keysend=bool(i % 2))
            step = rng.choice([0.002, 0.005, 0.008])
            level += step
            await w.verdict(sub, "ACCEPTED", improvement=step, vs_baseline=level)
        for i in range(REJECTED):
            sub = await w.submit(b, AGENTS[i % len(AGENTS)], keysend=bool(i % 2), stake_sats=STAKE_SATS)
            await w.verdict(sub, "REJECTED", improvement=0.0001, vs_baseline=level)
    finally:
        await w.close()


def run_with_kills(data_dir: Path, rng: random.Random, *, max_kills: int = 6, window_s: float = 0.25,
                   timeout_s: float = 60.0) -> CrashRun:
    """Start the worker, kill -9 it after a random delay, repeat; finally let it finish."""
    run = CrashRun()
    start = time.monotonic()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    while True:
        proc = subprocess.Popen([sys.executable, str(WORKER), str(data_dir)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
        run.restarts += 1
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("READY"):
            proc.kill()
            raise RuntimeError(f"the worker did not start: {line!r} {proc.stderr.read() if proc.stderr else ''}")
        if run.kills < max_kills:
            # The first kill lands within 20 ms of start-up, so a fast machine that pays
            # everything inside the window still sees at least one crash; later ones roam.
            time.sleep(rng.uniform(0, window_s if run.kills else min(window_s, 0.02)))
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)  # no cleanup, no flush: a crash
                proc.wait()
                run.kills += 1
                _where_killed(data_dir, run)
                continue
        try:
            out, err = proc.communicate(timeout=max(1.0, timeout_s - (time.monotonic() - start)))
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            raise RuntimeError(f"the worker did not finish in {timeout_s} s: {out[-1000:]} {err[-3000:]}") from None
        if "DONE" in out:
            break
        if time.monotonic() - start > timeout_s:
            raise RuntimeError(f"no DONE within {timeout_s} s: {out[-500:]} {err[-2000:]}")
    run.seconds = time.monotonic() - start
    return run


def _where_killed(data_dir: Path, run: CrashRun) -> None:
    db = sqlite3.connect(data_dir / "l402tui.sqlite")
    try:
        counts = dict(db.execute("SELECT status, COUNT(*) FROM payments GROUP BY status").fetchall())
        stake_rows = db.execute("SELECT payment_hash, status FROM invoices WHERE kind = 'stake'").fetchall()
        accepted = db.execute("SELECT COUNT(*) FROM submissions").fetchone()[0]
    finally:
        db.close()
    if counts.get("PENDING"):
        run.kills_with_send_in_flight += 1
    db = sqlite3.connect(data_dir / "simnet.sqlite")
    try:
        on_node = {h: st for h, st in db.execute("SELECT payment_hash, state FROM invoices").fetchall()}
    finally:
        db.close()
    if any(on_node.get(h) == "SETTLED" and st == "ACCEPTED" for h, st in stake_rows):
        run.kills_stake_settled_unbooked += 1
    if 0 < counts.get("COMPLETE", 0) < accepted or counts.get("PENDING") or counts.get("QUEUED"):
        run.kills_mid_payouts += 1


async def verify(data_dir: Path, run: CrashRun) -> CrashRun:
    w = await World.open(data_dir, create=False)
    try:
        store = w.store
        run.problems += await ledger.books_balance(store)
        for b in await store.fetchall("SELECT id FROM bounties"):
            run.problems += (await ledger.bounty_books(store, b["id"])).problems
        subs = await store.fetchall("SELECT * FROM submissions")
        for s in subs:
            if s["status"] == "REJECTED":
                refund = await store.fetchone("SELECT status FROM payments WHERE idempotency_key = ?",
                                              (f"stake_refund:{s['id']}",))
                if not await ledger.posted(store, f"stake_keep:{s['id']}") or refund["status"] != "COMPLETE":
                    run.lost_submissions += 1
                else:
                    run.stakes_resolved += 1
                continue
            allocated = await store.fetchone("SELECT 1 FROM events WHERE kind = 'payout.allocated' AND subject_id = ?",
                                             (s["id"],))
            owed = await store.scalar("SELECT COUNT(*) FROM payments WHERE submission_id = ?", (s["id"],))
            if allocated is None or (owed and s["status"] not in ("PAID_PARTIAL", "PAID_FULL")):
                run.lost_submissions += 1
        # Telescoping survives crashes: whatever the order, the payouts add up to the best level paid whole.
        for b in await store.fetchall("SELECT * FROM bounties"):
            gross = -int(await store.scalar(
                "SELECT COALESCE(SUM(amount_msat), 0) FROM ledger_entries WHERE account = ? AND txn_id LIKE "
                "'payout:%'", (ledger.pool(b["id"]),)))
            best = max([verdict_level(s) for s in subs if s["bounty_id"] == b["id"] and s["status"] != "REJECTED"],
                       default=0.0)
            whole = cumulative_split(pool_msat=b["pool_msat"], level=best, target=0.05,
                                     fee_percent=float(w.cfg.get("coordinator.fee_percent")),
                                     holdback_percent=float(w.cfg.get("coordinator.holdback_percent")))
            if gross != whole.gross_msat:
                run.problems.append(f"bounty {b['id']}: payouts took {gross} msat, the best level is worth "
                                    f"{whole.gross_msat} msat")
        for agent in AGENTS:
            on_books = 0
            for s in subs:
                if s["token_id"] == agent:
                    on_books += await w.sent_to(s["id"])  # payouts and stake refunds
            received = await w.received(agent)
            if received != on_books:
                run.double_payments += 1
                run.problems.append(f"{agent} received {received} msat, the ledger paid {on_books} msat")
        sends = await w.net.run(lambda: w.net.ledger.conn.execute(
            "SELECT COUNT(*) FROM payments WHERE payer = 'coordinator' AND state = 'COMPLETE'").fetchone()[0])
        run.sends_on_node = int(sends)
        complete = int(await store.scalar("SELECT COUNT(*) FROM payments WHERE status = 'COMPLETE'"))
        run.payments_complete = int(await store.scalar(
            "SELECT COUNT(*) FROM payments WHERE status = 'COMPLETE' AND purpose = 'payout'"))
        run.payments_owed = int(await store.scalar("SELECT COUNT(*) FROM payments WHERE purpose = 'payout'"))
        if run.sends_on_node != complete:
            run.double_payments += 1
            run.problems.append(f"the node completed {sends} payments for {complete} payment rows")
    finally:
        await w.close()
    return run


def one_run(data_dir: Path, seed: int, submissions: int = 6, **kw) -> CrashRun:
    rng = random.Random(seed)
    asyncio.run(setup(data_dir, submissions, seed))
    run = run_with_kills(data_dir, rng, **kw)
    return asyncio.run(verify(data_dir, run))
