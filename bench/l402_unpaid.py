"""Rows that unpaid 402 challenges leave in the coordinator's database and the sim network's.

    .venv/bin/python bench/l402_unpaid.py [--n 10000] [--cap 1000] [--expiry 2]

One gated route over loopback, a fresh store and sim network; ``--n`` requests without a
credential, none paid, with invoices that expire after ``--expiry`` s.  Printed per run:
answers by status, then the rows left (l402 invoices, token rows, events, the sim's
invoices and change rows) right after the requests and after the expiry plus one pruning
pass.  ``--cap 0`` runs without a cap (how the gate behaved before l402.max_unpaid_challenges;
an L402Gate without the setting is run as it is).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import inspect
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


async def run(n: int, cap: int, expiry: int) -> None:
    import aiohttp
    from aiohttp import web
    from aiohttp.test_utils import TestServer

    from l402tui.config import load_config
    from l402tui.l402.middleware import L402Gate, gated
    from l402tui.l402.tokens import RootKeyStore, TokenAuthority
    from l402tui.lightning.sim import SimNetwork
    from l402tui.store import Store

    tmp = Path(tempfile.mkdtemp(prefix="l402unpaid-"))
    cfg = load_config(tmp / "none.toml", env={}).with_overrides({"paths.data_dir": str(tmp)})
    net = SimNetwork.from_config(cfg)
    await net.create_node("coordinator", 0, exist_ok=True)
    store = await Store.open(cfg.db_path)
    kw = {}
    capped = "max_unpaid_challenges" in inspect.signature(L402Gate).parameters
    if capped:
        kw["max_unpaid_challenges"] = cap if cap > 0 else 10**12
    gate = L402Gate(store, net.node("coordinator"), TokenAuthority(RootKeyStore(store)),
                    prices_sats={"download_sats": 21}, token_valid_s=3600, per_token_per_minute=10**9,
                    per_ip_per_minute=10**9, invoice_expiry_s=expiry, **kw)
    if capped:
        gate.unpaid.grace_s = 0.0

    @gated("download", "download_sats")
    async def package(request: web.Request) -> web.Response:
        return web.Response(text="x")

    app = web.Application(middlewares=[gate.middleware])
    app.router.add_get("/b/{id}/package", package)
    srv = TestServer(app, host="127.0.0.1")
    await srv.start_server()

    def rows() -> str:
        db = sqlite3.connect(cfg.db_path)
        sim = sqlite3.connect(net.path)
        try:
            one = lambda c, q: c.execute(q).fetchone()[0]  # noqa: E731
            l402 = one(db, "SELECT COUNT(*) FROM invoices WHERE kind = 'l402'")
            return (f"invoices(l402)={l402} "
                    f"token_rows={one(db, 'SELECT COUNT(*) FROM l402_root_keys')} "
                    f"events={one(db, 'SELECT COUNT(*) FROM events')} "
                    f"sim_invoices={one(sim, 'SELECT COUNT(*) FROM invoices')} "
                    f"sim_changes={one(sim, 'SELECT COUNT(*) FROM changes')}")
        finally:
            db.close()
            sim.close()

    statuses: collections.Counter[int] = collections.Counter()
    started = time.perf_counter()
    async with aiohttp.ClientSession() as session:
        for i in range(n):
            async with session.get(str(srv.make_url(f"/b/b{i % 7}/package"))) as r:
                statuses[r.status] += 1
                await r.read()
    took = time.perf_counter() - started
    label = "before (no cap)" if not capped else (f"cap {cap}" if cap > 0 else "no cap")
    print(f"{label}: {n} requests in {took:.1f} s -> {dict(sorted(statuses.items()))}")
    print(f"  right after:               {rows()}")
    await asyncio.sleep(expiry + 1.5)
    await net.sweep()
    if capped:
        while await gate.unpaid.prune():
            pass
    print(f"  after expiry (+ pruning):  {rows()}")
    await srv.close()
    await store.close()
    await net.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--cap", type=int, default=1000)
    ap.add_argument("--expiry", type=int, default=2)
    args = ap.parse_args()
    asyncio.run(run(args.n, args.cap, args.expiry))


if __name__ == "__main__":
    main()
