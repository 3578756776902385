"""Throughput and latency of one handler served with and without the L402 gate, over loopback.

    .venv/bin/python bench/l402_gate.py [--seconds 3] [--rounds 3] [--concurrency 16]

The server runs in its own process with two listeners: the same app and handler,
one with the L402 middleware (credential check + per-IP and per-token rate limits)
and one without.  The client process hits one, then the other, alternating, with a
valid paid credential on the gated one.  Printed: requests/s, p50/p99 latency and
the *server's* CPU time per request (the client shares the 2 cores, so the CPU
figure is the one that says what the gate costs).  Target: gated/ungated >= 0.85.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PAYLOAD = os.urandom(4096)


def _server(queue: mp.Queue, stop: mp.Event) -> None:
    async def main() -> None:
        from aiohttp import web

        from l402tui.config import load_config
        from l402tui.l402.middleware import L402Gate, gated
        from l402tui.l402.tokens import RootKeyStore, TokenAuthority
        from l402tui.lightning.sim import SimNetwork
        from l402tui.store import Store

        tmp = Path(tempfile.mkdtemp(prefix="l402bench-"))
        cfg = load_config(tmp / "none.toml", env={}).with_overrides({"paths.data_dir": str(tmp)})
        net = SimNetwork.from_config(cfg)
        await net.create_node("coordinator", 0, exist_ok=True)
        store = await Store.open(cfg.db_path)
        authority = TokenAuthority(RootKeyStore(store))
        gate = L402Gate(store, net.node("coordinator"), authority, prices_sats={"download_sats": 21},
                        token_valid_s=3600, per_token_per_minute=10**9, per_ip_per_minute=10**9)

        @gated("download", "download_sats")
        async def package(request: web.Request) -> web.Response:
            return web.Response(body=PAYLOAD, content_type="application/octet-stream")

        def app(with_gate: bool) -> web.Application:
            a = web.Application(middlewares=[gate.middleware] if with_gate else [])
            a.router.add_get("/api/v1/bounties/{id}/package", package)
            return a

        preimage = os.urandom(32)
        async with store.transaction() as txn:
            minted = await authority.mint(txn, hashlib.sha256(preimage).hexdigest(), "b1", ["download"],
                                          int(time.time()) + 3600)
        ports = {}
        runners = []
        for name, with_gate in (("ungated", False), ("gated", True)):
            runner = web.AppRunner(app(with_gate), access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            runners.append(runner)
            ports[name] = site._server.sockets[0].getsockname()[1]
        queue.put({"ports": ports, "credential": f"L402 {minted.macaroon_b64}:{preimage.hex()}"})
        while not stop.is_set():
            await asyncio.sleep(0.1)
        for runner in runners:
            await runner.cleanup()
        await store.close()
        await net.close()

    asyncio.run(main())


async def _load(url: str, headers: dict[str, str], seconds: float, concurrency: int) -> list[float]:
    import aiohttp

    latencies: list[float] = []
    end = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def worker() -> None:
            while time.perf_counter() < end:
                t0 = time.perf_counter()
                async with session.get(url, headers=headers) as r:
                    await r.read()
                    if r.status != 200:
                        raise SystemExit(f"{url} answered {r.status}: the bench is broken")
                latencies.append(time.perf_counter() - t0)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies


async def _verify_costs(n: int = 300) -> tuple[float, float, float]:
    """Microseconds per mint, first verify (decode + HMAC chain + SQLite) and repeat verify."""
    from l402tui.l402.tokens import Credential, RootKeyStore, TokenAuthority
    from l402tui.store import Store

    tmp = Path(tempfile.mkdtemp(prefix="l402verify-"))
    store = await Store.open(tmp / "db.sqlite")
    authority = TokenAuthority(RootKeyStore(store))
    creds = []
    t0 = time.perf_counter()
    for _ in range(n):
        pre = os.urandom(32)
        async with store.transaction() as txn:
            minted = await authority.mint(txn, hashlib.sha256(pre).hexdigest(), "b1", ["download"],
                                          int(time.time()) + 3600)
        creds.append(Credential("L402", minted.macaroon_b64, pre.hex()))
    mint = (time.perf_counter() - t0) / n * 1e6
    t0 = time.perf_counter()
    for c in creds:
        await authority.verify(c, capability="download", bounty_id="b1")
    cold = (time.perf_counter() - t0) / n * 1e6
    t0 = time.perf_counter()
    for c in creds:
        await authority.verify(c, capability="download", bounty_id="b1")
    warm = (time.perf_counter() - t0) / n * 1e6
    await store.close()
    return mint, cold, warm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()

    import psutil

    queue: mp.Queue = mp.Queue()
    stop = mp.Event()
    proc = mp.Process(target=_server, args=(queue, stop), daemon=True)
    proc.start()
    info = queue.get(timeout=60)
    server = psutil.Process(proc.pid)
    results: dict[str, dict[str, list[float]]] = {"ungated": {"lat": [], "rps": [], "cpu": []},
                                                  "gated": {"lat": [], "rps": [], "cpu": []}}
    headers = {"ungated": {}, "gated": {"Authorization": info["credential"]}}

    async def run() -> None:
        for name in ("ungated", "gated"):  # warm-up
            await _load(f"http://127.0.0.1:{info['ports'][name]}/api/v1/bounties/b1/package", headers[name], 0.5,
                        args.concurrency)
        for _ in range(args.rounds):
            for name in ("ungated", "gated"):
                url = f"http://127.0.0.1:{info['ports'][name]}/api/v1/bounties/b1/package"
                cpu0 = sum(server.cpu_times()[:2])
                t0 = time.perf_counter()
                lat = await _load(url, headers[name], args.seconds, args.concurrency)
                elapsed = time.perf_counter() - t0
                cpu = sum(server.cpu_times()[:2]) - cpu0
                results[name]["lat"].extend(lat)
                results[name]["rps"].append(len(lat) / elapsed)
                results[name]["cpu"].append(cpu / len(lat) * 1e6)

    try:
        asyncio.run(run())
    finally:
        stop.set()
        proc.join(10)

    print(f"L402 gate bench: {args.rounds} rounds x {args.seconds:g} s per side, concurrency {args.concurrency}, "
          f"4 KiB response, loopback, {os.cpu_count()} cores")
    print(f"{'':10}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'server CPU us/req':>20}")
    for name in ("ungated", "gated"):
        r = results[name]
        lat = sorted(r["lat"])
        p50 = lat[len(lat) // 2] * 1e3
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e3
        print(f"{name:10}{statistics.median(r['rps']):>10.0f}{p50:>10.2f}{p99:>10.2f}"
              f"{statistics.median(r['cpu']):>20.1f}")
    ratio = statistics.median(results["gated"]["rps"]) / statistics.median(results["ungated"]["rps"])
    cpu_ratio = statistics.median(results["ungated"]["cpu"]) / statistics.median(results["gated"]["cpu"])
    print(f"throughput ratio gated/ungated: {ratio:.3f} (target >= 0.85)")
    print(f"server CPU ratio ungated/gated: {cpu_ratio:.3f} (what the gate costs per request)")
    mint, cold, warm = asyncio.run(_verify_costs())
    print(f"token mint (incl. SQLite commit): {mint:.0f} us; verify first use: {cold:.0f} us; "
          f"verify repeat (cached): {warm:.1f} us")


if __name__ == "__main__":
    main()
