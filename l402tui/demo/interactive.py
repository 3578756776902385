"""`l402tui demo` in the TUI: the app runs the coordinator in-process as usual, and the
sponsor and the two agents act beside it on a background thread of their own.

Their narration goes to ``<demo data dir>/logs/demo.log``; the panes show the rest
(bounties funded, submissions evaluated, payouts and holdbacks in the ledger).
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

from l402tui.demo import story
from l402tui.demo.world import DemoPlan, open_network


class ActorsThread:
    """The sponsor and agents on their own event loop, stoppable from the UI thread."""

    def __init__(self, plan: DemoPlan):
        self.plan = plan
        self.log_path = plan.cfg.data_dir / "logs" / "demo.log"
        self.error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, name="demo-actors", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout_s)

    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as exc:  # noqa: BLE001 - reported in the log and on exit
            self.error = exc
            self._write(f"demo actors stopped: {type(exc).__name__}: {exc}")

    def _write(self, line: str) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("a", encoding="utf-8") as f:
            f.write(f"{time.strftime('%H:%M:%S')} {line}\n")

    async def _run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        net = await open_network(self.plan.cfg)
        show = story.Performance(self.plan, net, self._write, story.Milestones(), self._stop)
        try:
            await show.begin(wait_s=120)  # the app starts the coordinator after its first frame
            await self._stop.wait()
        finally:
            await show.close()
            await net.close()


def run_interactive(plan: DemoPlan) -> int:
    from l402tui.tui.launch import build_app

    cfg = plan.cfg
    # The sim network must hold the demo's nodes before the app's coordinator opens it.
    asyncio.run(_seed_network(plan))
    actors = ActorsThread(plan)
    actors.start()
    app = build_app(cfg)
    try:
        app.run()
    finally:
        actors.stop()
    if actors.error is not None:
        print(f"the demo's sponsor/agents stopped early: {actors.error} (see {actors.log_path})")
        return 1
    print(f"demo data kept in {cfg.data_dir} (story log: {actors.log_path})")
    return 0


async def _seed_network(plan: DemoPlan) -> None:
    net = await open_network(plan.cfg)
    await net.close()
