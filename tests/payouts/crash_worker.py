"""A coordinator process for the kill -9 tests: run the real service's start-up (which
replays every ACCEPTED submission into payouts.on_accepted), claim what waits for
an invoice the way the /claim handler does, and tick until every payout and stake
refund is done.

    python tests/payouts/crash_worker.py DATA_DIR

Prints READY once its files are open (the parent kills it any time after) and DONE
when nothing is left to pay.  It may be killed anywhere; the next run picks up.
With ``L402TUI_TEST_DIE_AFTER=<node method>`` it kills itself (SIGKILL) right after the
first call of that method on its node returns: a crash at exactly that point.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from payouts_world import World  # noqa: E402

from l402tui.coordinator import payouts  # noqa: E402
from l402tui.coordinator.errors import CoordinatorError  # noqa: E402
from l402tui.coordinator.service import Coordinator  # noqa: E402


class DiesAfter:
    """The node, as seen by a process that is killed the moment one call to it returns."""

    def __init__(self, inner, method: str):
        self.inner, self.method = inner, method

    def __getattr__(self, item):
        attr = getattr(self.inner, item)
        if item != self.method:
            return attr

        async def call(*a, **kw):
            await attr(*a, **kw)
            os.kill(os.getpid(), signal.SIGKILL)
        return call


async def main(data_dir: Path) -> int:
    w = await World.open(data_dir, create=False)
    print("READY", flush=True)
    die_after = os.environ.get("L402TUI_TEST_DIE_AFTER")
    if die_after:
        w.coordinator = DiesAfter(w.coordinator, die_after)
    coord = Coordinator(w.cfg, w.store, w.coordinator)
    await coord.start()  # the service replays ACCEPTED submissions into payouts.on_accepted
    try:
        for _ in range(200):
            await payouts.tick(w.store, w.coordinator, w.cfg)
            waiting = await w.store.fetchall(
                "SELECT p.*, s.token_id AS agent FROM payments p JOIN submissions s ON s.id = p.submission_id "
                "WHERE p.status = 'AWAITING_CLAIM'")
            for row in waiting:
                invoice = await w.agents[row["agent"]].create_invoice(row["amount_msat"], "claim")
                try:
                    await payouts.claim(w.store, w.coordinator, w.cfg, row["submission_id"], invoice.bolt11)
                except CoordinatorError as exc:
                    print(f"claim refused: {exc}", flush=True)
            # Done when every accepted submission has its payout decided (a spent pool decides 0), every
            # stake is resolved, and everything owed is paid.
            left = await w.store.scalar(
                "SELECT COUNT(*) FROM submissions s WHERE (s.status != 'REJECTED' AND NOT EXISTS (SELECT 1 FROM "
                "events e WHERE e.kind = 'payout.allocated' AND e.subject_id = s.id)) OR EXISTS (SELECT 1 FROM "
                "payments p WHERE p.submission_id = s.id AND p.status != 'COMPLETE') OR (s.stake_payment_hash IS "
                "NOT NULL AND NOT EXISTS (SELECT 1 FROM ledger_entries WHERE txn_id IN ('stake_keep:' || s.id, "
                "'stake_return:' || s.id, 'stake_forfeit:' || s.id)))")
            if left == 0:
                print("DONE", flush=True)
                return 0
            await asyncio.sleep(0.01)
        return 1
    finally:
        await coord.stop()
        await w.close()


if __name__ == "__main__":
    sys.exit(asyncio.run(main(Path(sys.argv[1]))))
