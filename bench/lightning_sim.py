"""Simulated Lightning network: hold-invoice latencies and invoice throughput.

    .venv/bin/python bench/lightning_sim.py [--rounds 50] [--invoices 200]

Prints, for hold invoices on one SimNetwork handle (as in one process):
create, pay -> ACCEPTED (the call, and until the receiver's updates() stream sees it),
settle_hold call (target <= 50 ms), and settle -> payer sees COMPLETE; then the
same ACCEPTED/SETTLED delivery as seen by a *second process* polling the shared
SQLite file (coordinator daemon and agent are separate processes); then plain
invoices created per second and created+paid per second.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from l402tui.lightning.sim import SimNetwork  # noqa: E402

WATCHER = """
import asyncio, json, sys, time
from l402tui.lightning.sim import SimNetwork
async def main():
    net = SimNetwork.open(sys.argv[1])
    stream = net.node("coordinator").updates(since_seq=0)
    print("ready", flush=True)
    async for u in stream:
        print(json.dumps([u.payment_hash, u.state.value, time.time()]), flush=True)
asyncio.run(main())
"""


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def row(name: str, seconds: list[float]) -> str:
    ms = [s * 1000 for s in seconds]
    return f"{name:<44} p50 {statistics.median(ms):7.2f} ms   p90 {pct(ms, 0.9):7.2f} ms   max {max(ms):7.2f} ms"


async def hold_rounds(net: SimNetwork, rounds: int, watcher: subprocess.Popen | None) -> dict[str, list[float]]:
    coordinator, sponsor = net.node("coordinator"), net.node("sponsor")
    stream = coordinator.updates()
    out: dict[str, list[float]] = {k: [] for k in ("create", "pay", "accepted_seen", "settle", "complete_seen",
                                                   "xproc_accepted", "xproc_settled")}
    for _ in range(rounds):
        preimage = os.urandom(32).hex()
        payment_hash = hashlib.sha256(bytes.fromhex(preimage)).hexdigest()
        t0 = time.perf_counter()
        hold = await coordinator.create_hold_invoice(payment_hash, 100_000, "bench")
        t1 = time.perf_counter()
        wall_pay = time.time()
        await sponsor.pay(hold.bolt11)
        t2 = time.perf_counter()
        update = await stream.__anext__()
        t3 = time.perf_counter()
        assert update.state.value == "ACCEPTED"
        wall_settle = time.time()
        t4 = time.perf_counter()
        await coordinator.settle_hold(preimage)
        t5 = time.perf_counter()
        while (await sponsor.lookup_payment(payment_hash)).state.value != "COMPLETE":
            await asyncio.sleep(0.001)
        t6 = time.perf_counter()
        await stream.__anext__()  # our own SETTLED
        out["create"].append(t1 - t0)
        out["pay"].append(t2 - t1)
        out["accepted_seen"].append(t3 - t1)
        out["settle"].append(t5 - t4)
        out["complete_seen"].append(t6 - t4)
        if watcher is not None:
            seen = {}
            while len(seen) < 2:
                h, state, at = json.loads(watcher.stdout.readline())
                if h == payment_hash:
                    seen[state] = at
            out["xproc_accepted"].append(seen["ACCEPTED"] - wall_pay)
            out["xproc_settled"].append(seen["SETTLED"] - wall_settle)
    await stream.aclose()
    return out


async def throughput(net: SimNetwork, count: int) -> tuple[float, float]:
    coordinator, sponsor = net.node("coordinator"), net.node("sponsor")
    t0 = time.perf_counter()
    for i in range(count):
        await coordinator.create_invoice(1_000 + i, "bench")
    created = count / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for i in range(count):
        inv = await coordinator.create_invoice(1_000 + i, "bench")
        await sponsor.pay(inv.bolt11)
    paid = count / (time.perf_counter() - t0)
    return created, paid


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--invoices", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "simnet.sqlite"
        net = SimNetwork.open(path, block_interval_s=600.0)
        await net.create_node("coordinator", 0)
        await net.create_node("sponsor", 10**12)
        watcher = subprocess.Popen([sys.executable, "-c", WATCHER, str(path)], stdout=subprocess.PIPE, text=True,
                                   cwd=Path(__file__).resolve().parents[1])
        assert watcher.stdout.readline().strip() == "ready"
        try:
            await hold_rounds(net, 3, watcher)  # warm-up: imports, caches, the watcher's first poll
            lat = await hold_rounds(net, args.rounds, watcher)
        finally:
            watcher.kill()
            watcher.wait()
        await throughput(net, 20)  # warm-up
        # Alternate three times and keep the best: the shared build box is noisy.
        runs = [await throughput(net, args.invoices) for _ in range(3)]
        created, paid = max(r[0] for r in runs), max(r[1] for r in runs)
        totals = await net.totals()
        await net.close()
    load = os.getloadavg()[0]
    print(f"sim hold invoices: {args.rounds} rounds, {os.cpu_count()} CPUs, load average {load:.1f}")
    print(row("create_hold_invoice (BOLT11 sign + commit)", lat["create"]))
    print(row("pay call (HTLC held, payment PENDING)", lat["pay"]))
    print(row("pay -> ACCEPTED seen by updates()", lat["accepted_seen"]))
    print(row("settle_hold call (target <= 50 ms)", lat["settle"]))
    print(row("settle -> payer sees COMPLETE", lat["complete_seen"]))
    print(row("pay -> ACCEPTED seen by another process", lat["xproc_accepted"]))
    print(row("settle -> SETTLED seen by another process", lat["xproc_settled"]))
    print(f"plain invoices created        {created:8.1f} /s  (best of 3 x {args.invoices})")
    print(f"plain invoices created + paid {paid:8.1f} /s  (best of 3 x {args.invoices})")
    print(f"books balance: {totals.balanced} (fees collected {totals.fees_msat} msat)")


if __name__ == "__main__":
    asyncio.run(main())
