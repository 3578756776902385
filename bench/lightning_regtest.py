"""Hold-invoice latencies on real lightningd + bitcoind regtest (beside bench/lightning_sim.py).

    .venv/bin/python bench/lightning_regtest.py [--rounds 30]

Starts the test network of tests/lightning/regtest.py (the ../shared/cln archive,
L402TUI_CLN_DIST/_ARCHIVE or binaries on PATH), then per round on the coordinator
node (our plugin) paid by the agent over a direct channel: create_hold_invoice,
the pay call, pay -> ACCEPTED seen by the coordinator's updates() stream, the
settle_hold call (the step after a verdict), and settle -> payer sees COMPLETE;
then plain invoice create+pay and keysend.  Prints p50/p90/max in ms.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from l402tui.lightning.backend import InvoiceState, PaymentState  # noqa: E402
from l402tui.lightning.cln import ClnBackend  # noqa: E402
from tests.lightning.regtest import start_network, stop_network  # noqa: E402


def row(name: str, values: list[float]) -> str:
    ms = sorted(v * 1000 for v in values)
    p90 = ms[min(len(ms) - 1, int(round(0.9 * (len(ms) - 1))))]
    return f"| {name} | {statistics.median(ms):.1f} ms | {p90:.1f} ms | {ms[-1]:.1f} ms |"


async def measure(net, rounds: int) -> None:
    coordinator = ClnBackend(net.nodes["coordinator"].rpc_path, wait_timeout_s=5)
    agent = ClnBackend(net.nodes["agent"].rpc_path)
    steps: dict[str, list[float]] = {k: [] for k in ("create", "pay", "accepted", "settle", "complete",
                                                     "plain", "keysend")}
    stream = coordinator.updates()
    accepted: dict[str, asyncio.Future] = {}

    async def follow() -> None:
        async for update in stream:
            fut = accepted.get(update.payment_hash)
            if update.state is InvoiceState.ACCEPTED and fut is not None and not fut.done():
                fut.set_result(time.perf_counter())

    follower = asyncio.create_task(follow())
    coordinator_id = (await coordinator.status()).node_id
    try:
        for i in range(rounds + 2):  # two warm-up rounds
            preimage = os.urandom(32).hex()
            payment_hash = hashlib.sha256(bytes.fromhex(preimage)).hexdigest()
            accepted[payment_hash] = asyncio.get_running_loop().create_future()
            t0 = time.perf_counter()
            hold = await coordinator.create_hold_invoice(payment_hash, 50_000, f"bench {i}")
            t1 = time.perf_counter()
            payment = await agent.pay(hold.bolt11, timeout_s=0.05)
            t2 = time.perf_counter()
            seen = await asyncio.wait_for(accepted[payment_hash], 30)
            t3 = time.perf_counter()
            await coordinator.settle_hold(preimage)
            t4 = time.perf_counter()
            while (await agent.lookup_payment(payment_hash)).state is not PaymentState.COMPLETE:
                await asyncio.sleep(0.002)
            t5 = time.perf_counter()
            plain = await coordinator.create_invoice(1_000, f"fee {i}")
            await agent.pay(plain.bolt11)
            t6 = time.perf_counter()
            await agent.keysend(coordinator_id, 1_000)
            t7 = time.perf_counter()
            if i < 2:
                continue
            assert payment.state is PaymentState.PENDING
            steps["create"].append(t1 - t0)
            steps["pay"].append(t2 - t1)
            steps["accepted"].append(seen - t1)
            steps["settle"].append(t4 - t3)
            steps["complete"].append(t5 - t3)
            steps["plain"].append(t6 - t5)
            steps["keysend"].append(t7 - t6)
    finally:
        follower.cancel()
        await coordinator.close()
        await agent.close()
    print(f"{rounds} rounds after 2 warm-up rounds; load average {os.getloadavg()[0]:.1f}")
    print("| step | p50 | p90 | max |\n|---|---|---|---|")
    print(row("`create_hold_invoice` (plugin + signinvoice + datastore)", steps["create"]))
    print(row("`pay` call returns PENDING (timeout_s=0.05)", steps["pay"]))
    print(row("pay → ACCEPTED seen by `updates()`", steps["accepted"]))
    print(row("**`settle_hold` call** (after a verdict)", steps["settle"]))
    print(row("settle → payer sees COMPLETE", steps["complete"]))
    print(row("plain invoice create + pay (COMPLETE)", steps["plain"]))
    print(row("keysend (xkeysend) COMPLETE", steps["keysend"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    t = time.perf_counter()
    net = start_network()
    print(f"network up in {time.perf_counter() - t:.1f} s (bitcoind + 3 lightningd, 2 channels)")
    try:
        asyncio.run(measure(net, args.rounds))
    finally:
        stop_network(net)


if __name__ == "__main__":
    main()
