"""kill -9 the coordinator at random points of the pay path, 100 runs (or --runs N).

Each run: a funded bounty with 6 ACCEPTED submissions (half keysend, half claim),
a real coordinator subprocess (tests/payouts/crash_worker.py) killed with SIGKILL up
to 4 times at a random moment, then restarted until every payout is done.  Prints
double payments, lost submissions, ledger problems and where the kills landed.

    .venv/bin/python bench/crash_payouts.py --runs 100
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "payouts"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from crash_harness import one_run  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--kills", type=int, default=4, help="kills per run")
    parser.add_argument("--seed", type=int, default=1000)
    args = parser.parse_args()
    totals = {"kills": 0, "restarts": 0, "in_flight": 0, "mid": 0, "double": 0, "lost": 0, "bad_books": 0,
              "payments": 0, "owed": 0}
    started = time.monotonic()
    for i in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="crash-payouts-") as tmp:
            run = one_run(Path(tmp), args.seed + i, submissions=6, max_kills=args.kills)
        totals["kills"] += run.kills
        totals["restarts"] += run.restarts
        totals["in_flight"] += run.kills_with_send_in_flight
        totals["mid"] += run.kills_mid_payouts
        totals["double"] += run.double_payments
        totals["lost"] += run.lost_submissions
        totals["bad_books"] += bool(run.problems)
        totals["payments"] += run.payments_complete
        totals["owed"] += run.payments_owed
        if run.problems:
            print(f"run {i}: {run.problems}", flush=True)
        if (i + 1) % 10 == 0:
            print(f"{i + 1} runs, {time.monotonic() - started:.0f} s", flush=True)
    elapsed = time.monotonic() - started
    print(f"runs:                         {args.runs}")
    print(f"kill -9s:                     {totals['kills']} ({totals['restarts']} process starts)")
    print(f"  with payouts half done:     {totals['mid']}")
    print(f"  with a send in flight:      {totals['in_flight']} (PENDING row at the kill)")
    print(f"payouts completed:            {totals['payments']} of {totals['owed']} owed "
          f"({6 * args.runs - totals['owed']} accepted after the pool was spent: 0 sat)")
    print(f"double payments:              {totals['double']}")
    print(f"lost submissions:             {totals['lost']}")
    print(f"runs with unbalanced books:   {totals['bad_books']}")
    print(f"wall time:                    {elapsed:.1f} s ({elapsed / args.runs:.2f} s per run)")
    return 0 if totals["double"] == totals["lost"] == totals["bad_books"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
