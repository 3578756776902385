"""What a payout costs the coordinator, as the books grow.

For ledgers already holding N accepted-and-paid submissions (spread over bounties of
20 submissions each), times one more payout end to end on the sim network
(on_accepted with a keysend; on_accepted + claim with an invoice), one idle
``payouts.tick`` (what the service runs every second), and one books check
(``ledger.bounty_books``, which runs inside every payout transition).

    .venv/bin/python bench/payout_costs.py [--sizes 0 200 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "payouts"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from payouts_world import World  # noqa: E402

from l402tui.coordinator import ledger, payouts  # noqa: E402

PER_BOUNTY = 20


async def grow(w: World, n: int) -> None:
    b = None
    for i in range(n):
        if i % PER_BOUNTY == 0:
            b = await w.bounty(pool_sats=100_000)
        s = await w.submit(b, "agent-1", keysend=True)
        await w.verdict(s, "ACCEPTED", 0.0001)
        await payouts.on_accepted(w.store, w.coordinator, w.cfg, s)


async def measure(n: int, repeats: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="payout-costs-") as tmp:
        w = await World.open(Path(tmp))
        try:
            await grow(w, n)
            b = await w.bounty(pool_sats=100_000)
            keysend, claim, tick, check = [], [], [], []
            for _ in range(repeats):
                s = await w.submit(b, "agent-2", keysend=True)
                await w.verdict(s, "ACCEPTED", 0.0001)
                t = time.perf_counter()
                await payouts.on_accepted(w.store, w.coordinator, w.cfg, s)
                keysend.append(time.perf_counter() - t)
                s = await w.submit(b, "agent-3")
                await w.verdict(s, "ACCEPTED", 0.0001)
                row = await payouts.on_accepted(w.store, w.coordinator, w.cfg, s)
                inv = await w.agents["agent-3"].create_invoice(row["payments"][0]["amount_msat"], "claim")
                t = time.perf_counter()
                await payouts.claim(w.store, w.coordinator, w.cfg, s, inv.bolt11)
                claim.append(time.perf_counter() - t)
                t = time.perf_counter()
                await payouts.tick(w.store, w.coordinator, w.cfg)
                tick.append(time.perf_counter() - t)
                t = time.perf_counter()
                books = await ledger.bounty_books(w.store, b)
                check.append(time.perf_counter() - t)
                assert not books.problems, books.problems
            entries = await w.store.scalar("SELECT COUNT(*) FROM ledger_entries")
        finally:
            await w.close()
    ms = lambda xs: statistics.median(xs) * 1000  # noqa: E731
    return {"entries": entries, "keysend": ms(keysend), "claim": ms(claim), "tick": ms(tick), "check": ms(check)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[0, 200, 1000])
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    print(f"{'paid before':>11} {'ledger rows':>11} {'keysend payout':>15} {'claim':>8} {'idle tick':>10} "
          f"{'books check':>12}   (medians, ms)")
    for n in args.sizes:
        r = asyncio.run(measure(n, args.repeats))
        print(f"{n:>11} {r['entries']:>11} {r['keysend']:>15.1f} {r['claim']:>8.1f} {r['tick']:>10.1f} "
              f"{r['check']:>12.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
