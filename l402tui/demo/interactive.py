"""`l402tui demo` in the TUI: the app runs the coordinator in-process as usual, and the
sponsor and the two agents act beside it on a background thread of their own.

Their narration shows in the app's story pane as it happens (and goes to
``<demo data dir>/logs/demo.log``); when the story is complete (funded, fees paid,
experiments, evaluated, paid 80 %, holdback released) the app opens its summary:
milestones, balances before and after, bounties and submissions.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from typing import Callable

from l402tui.demo import story
from l402tui.demo.world import AGENTS, DemoPlan, open_network

HOLDBACK_CLAIM_WAIT_S = 30.0  # after the release, how long the agent gets to claim it before the summary


class StoryRelay:
    """Hands the actors' lines (from their thread) to the app; lines told before the app
    runs wait and go with the next one."""

    def __init__(self, post: Callable[[object], object] | None = None, running: Callable[[], bool] = lambda: True):
        self.post = post
        self.running = running
        self._pending: list[object] = []
        self._lock = threading.Lock()

    def attach(self, app) -> None:
        self.post, self.running = app.post_message, lambda: app.is_running

    def tell(self, at_s: float, line: str) -> None:
        if self.post is not None:
            from l402tui.tui.messages import StoryTold

            self._send(StoryTold(at_s, line))

    def end(self, summary: story.StorySummary) -> None:
        if self.post is not None:
            from l402tui.tui.messages import StoryEnded

            self._send(StoryEnded(summary))

    def _send(self, message: object) -> None:
        with self._lock:
            self._pending.append(message)
            if not self.running():
                return
            pending, self._pending = self._pending, []
        for m in pending:  # post_message is thread-safe once the app's loop runs
            self.post(m)


class ActorsThread:
    """The sponsor and agents on their own event loop, stoppable from the UI thread."""

    def __init__(self, plan: DemoPlan, relay: StoryRelay | None = None):
        self.plan = plan
        self.relay = relay or StoryRelay()
        self.log_path = plan.cfg.data_dir / "logs" / "demo.log"
        self.error: BaseException | None = None
        self.marks = story.Milestones()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, name="demo-actors", daemon=True)

    def start(self) -> None:
        self.marks = story.Milestones()  # the story's clock starts with the actors
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout_s)

    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as exc:  # noqa: BLE001 - reported in the log, on screen and on exit
            self.error = exc
            self._write(f"demo actors stopped: {type(exc).__name__}: {exc}")

    def _write(self, line: str) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("a", encoding="utf-8") as f:
            f.write(f"{time.strftime('%H:%M:%S')} {line}\n")
        self.relay.tell(time.monotonic() - self.marks.started, line)

    async def _run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        net = await open_network(self.plan.cfg)
        before = await story.balances(net)
        self._write(f"simulated Lightning network ready: sponsor {before['sponsor'] // 1000:,} sats, "
                    + ", ".join(f"{a} {before[a] // 1000:,} sats" for a in AGENTS))
        show = story.Performance(self.plan, net, self._write, self.marks, self._stop)
        try:
            await show.begin(wait_s=120)  # the app starts the coordinator after its first frame
            self._write("the sponsor's bounties are open; the agents pay their L402 fees and start experimenting")
            if await self._until_complete(show):
                after = await story.balances(net)
                self.relay.end(await story.collect_summary(show.admin, before, after, self.marks))
            await self._stop.wait()
        finally:
            await show.close()
            await net.close()

    async def _until_complete(self, show: story.Performance) -> bool:
        """Wait for every milestone of the story (False if the app stopped first); an actor's
        failure is raised (and so told)."""
        marks = self.marks
        if not await show.until_complete(self._stop.is_set):
            return False
        self._write("the story is complete: funded, fees paid, experiments, evaluated, paid 80 %, holdback released")
        deadline = time.monotonic() + HOLDBACK_CLAIM_WAIT_S
        while "holdback_paid" not in marks.seen and time.monotonic() < deadline and not self._stop.is_set():
            marks.changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(marks.changed.wait(), 1.0)
        return not self._stop.is_set()


def run_interactive(plan: DemoPlan) -> int:
    from l402tui.tui.launch import build_app

    cfg = plan.cfg
    # The sim network must hold the demo's nodes before the app's coordinator opens it.
    asyncio.run(_seed_network(plan))
    app = build_app(cfg)
    relay = StoryRelay()
    relay.attach(app)
    actors = ActorsThread(plan, relay)
    actors.start()
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
