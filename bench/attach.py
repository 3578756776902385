"""What `l402tui --attach` costs against reading the database in-process.

    .venv/bin/python bench/attach.py [--log-mib 8] [--events 200] [--rounds 3]

A coordinator over a real SQLite store and the sim network, its HTTP app on a real
loopback socket, and the admin client the attached TUI uses.  Measured:

- reading a finished evaluation log of ``--log-mib`` MiB to the end: over the admin
  API (1 MiB pages, JSON) and straight from the store (what the in-process TUI does);
- event latency: from the commit of an event to the client yielding it off the SSE
  stream (the coordinator wakes its streams on its own commits);
- resume after a restart: the HTTP server stops, an event is written, the server
  starts again on the same port; time from the restart to the client yielding the
  missed event (bounded below by the client's reconnect back-off, 0.5 s at first).

Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aiohttp import web  # noqa: E402

from l402tui.config import load_config  # noqa: E402
from l402tui.coordinator.admin import ensure_admin_macaroon  # noqa: E402
from l402tui.coordinator.app import create_app  # noqa: E402
from l402tui.coordinator.client import HttpCoordinatorClient  # noqa: E402
from l402tui.coordinator.service import Coordinator  # noqa: E402
from l402tui.lightning.sim import SimNetwork  # noqa: E402
from l402tui.store import Store  # noqa: E402
from l402tui.tui.store_source import StoreSource  # noqa: E402


async def _serve(coordinator: Coordinator, port: int) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(create_app(coordinator, manage_lifecycle=False))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]


async def _log_eval(store: Store, root: Path, mib: int) -> int:
    line = b"step 000000 loss 0.123456 lr 0.000300 tokens/s 123456\n"
    path = root / "big.log"
    with path.open("wb") as f:
        for _ in range(mib * 1024 * 1024 // len(line)):
            f.write(line)
    async with store.transaction() as txn:
        eid = await txn.insert("evaluations", {"bounty_id": "b_bench", "kind": "baseline", "status": "DONE",
                                               "created_at": time.time()})
        await txn.insert("eval_runs", {"evaluation_id": eid, "repeat": 0, "log_path": str(path)})
    return eid


async def _read_all(read, eid: int) -> tuple[float, int]:
    t0, offset, n = time.perf_counter(), 0, 0
    while True:
        lines, nxt = await read(eid, offset)
        if not lines:
            return time.perf_counter() - t0, n
        n, offset = n + len(lines), nxt


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        cfg = load_config(root / "none.toml", env={}).with_overrides({"paths.data_dir": str(root / "data")})
        net = SimNetwork.from_config(cfg)
        await net.create_node("coordinator", 0, exist_ok=True)
        store = await Store.open(cfg.db_path)
        coordinator = Coordinator(cfg, store, net.node("coordinator"))
        runner, port = await _serve(coordinator, 0)
        token = (await ensure_admin_macaroon(store, cfg.data_dir)).read_text().strip()
        client = HttpCoordinatorClient(f"http://127.0.0.1:{port}", admin_macaroon=token, max_reconnect_delay_s=0.5)
        local = StoreSource(store)
        eid = await _log_eval(store, root, args.log_mib)

        async def over_http(e: int, offset: int) -> tuple[list[str], int]:
            page = await client.eval_log(e, offset, max_bytes=1024 * 1024)
            return page["lines"], page["next_offset"]

        for r in range(args.rounds):
            http_s, n = await _read_all(over_http, eid)
            local_s, n2 = await _read_all(local.eval_log, eid)
            print(f"round {r + 1}: {args.log_mib} MiB log ({n:,} lines): admin API {http_s * 1000:.0f} ms "
                  f"({args.log_mib / http_s:.0f} MiB/s), in-process {local_s * 1000:.0f} ms "
                  f"({args.log_mib / local_s:.0f} MiB/s)")
            assert n == n2

        got: asyncio.Queue = asyncio.Queue()

        async def follow() -> None:
            async for event in client.events(await client.last_event_id()):
                got.put_nowait((time.perf_counter(), event))

        follower = asyncio.create_task(follow())
        await asyncio.sleep(0.3)
        for r in range(args.rounds):
            lat = []
            for i in range(args.events):
                t0 = time.perf_counter()
                async with coordinator.transaction() as txn:
                    await txn.event("bench.tick", f"e{i}")
                t1, _ = await got.get()
                lat.append((t1 - t0) * 1000)
            lat.sort()
            print(f"round {r + 1}: event commit -> client: median {statistics.median(lat):.1f} ms, "
                  f"p95 {lat[int(len(lat) * 0.95)]:.1f} ms over {args.events} events")

        for r in range(args.rounds):
            await runner.cleanup()
            async with coordinator.transaction() as txn:
                await txn.event("bench.missed", f"m{r}")
            await asyncio.sleep(0.2)
            t0 = time.perf_counter()
            runner, _ = await _serve(coordinator, port)
            t1, event = await got.get()
            print(f"round {r + 1}: restart -> missed event {event['kind']} #{event['id']}: {(t1 - t0) * 1000:.0f} ms "
                  "(reconnect back-off included)")

        follower.cancel()
        await client.close()
        await runner.cleanup()
        await store.close()
        await net.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--log-mib", type=int, default=8)
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    asyncio.run(main(parser.parse_args()))
