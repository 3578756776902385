"""Driving the autoresearch loop (``l402tui/agent``) from the agent side panel.

The loop runs on a loop thread of its own (its evaluations and git work must not
cost the screen a frame); its events are translated into the panel's small event
types and handed to the TUI's loop thread-safely.  Pause lets the running
experiment finish and stops there (start resumes from results.tsv and the work
tree); stop cancels at once, and the loop resets the tree to its last kept commit.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable

from l402tui.tui.agent_events import (AgentController, AgentEvent, AgentExperiment, AgentLogLine, AgentStateChanged,
                                      AgentStep)
from l402tui.tui.loop_thread import LoopThread

# run(on_event, stop) -> awaitable that runs until ``stop`` is set (ExperimentLoop.run or AgentSession.run)
RunFactory = Callable[[Callable[[Any], None], asyncio.Event], Awaitable[Any]]


def translate(event: Any, now: float) -> list[AgentEvent]:
    """The agent loop's events (l402tui.agent.events) as the panel's."""
    kind = type(event).__name__
    if kind == "LoopStarted":
        resumed = f" · resumed after {event.experiments_done}" if event.resumed else ""
        return [AgentStateChanged("running", f"{event.bounty} · {event.metric_name} ({event.direction}){resumed}",
                                  minimize=event.direction == "minimize"),
                AgentLogLine(f"work tree {event.work_tree} on {event.branch}")]
    if kind == "ExperimentStarted":
        return [AgentStep(f"experiment {event.number}: {event.description}")]
    if kind == "ExperimentFinished":
        description = event.description if event.status == "keep" else f"{event.description} ({event.reason})"
        return [AgentExperiment(event.commit, event.metric, event.status, description, now)]
    if kind == "BestImproved":
        return [AgentLogLine(f"best {event.previous} -> {event.metric} at {event.commit}")]
    if kind == "LoopProgress":
        return []  # the panel computes rates from the experiments themselves
    if kind == "LoopStopped":
        return [AgentStateChanged("stopped", event.reason)]
    return [AgentLogLine(str(event))]  # submissions, claims: shown as they are


class LoopAgentController(AgentController):
    def __init__(self, run: RunFactory, *, description: str, minimize: bool = True):
        self._run = run
        self.description = description
        self.minimize = minimize
        self._thread: LoopThread | None = None
        self._future = None
        self._stop: asyncio.Event | None = None
        self._pausing = False
        self._queue: asyncio.Queue[AgentEvent] | None = None
        self._ui_loop: asyncio.AbstractEventLoop | None = None

    def _emit(self, events: list[AgentEvent]) -> None:
        if self._ui_loop is not None and self._queue is not None:
            for e in events:
                self._ui_loop.call_soon_threadsafe(self._queue.put_nowait, e)

    def _on_loop_event(self, event: Any) -> None:  # called on the loop thread
        events = translate(event, time.time())
        if self._pausing and events and isinstance(events[-1], AgentStateChanged) and events[-1].state == "stopped":
            events[-1] = AgentStateChanged("paused", "paused after the running experiment; start resumes")
        if type(event).__name__ == "LoopStarted":
            self.minimize = event.direction == "minimize"
        self._emit(events)

    @property
    def running(self) -> bool:
        return self._future is not None and not self._future.done()

    async def start(self) -> None:
        if self.running:
            return
        self._ui_loop = asyncio.get_running_loop()
        if self._queue is None:
            self._queue = asyncio.Queue()
        if self._thread is None:
            self._thread = LoopThread("agent-loop")
        self._pausing = False

        async def body() -> None:
            self._stop = asyncio.Event()  # created on the loop that waits on it
            try:
                await self._run(self._on_loop_event, self._stop)
            except asyncio.CancelledError:
                self._emit([AgentStateChanged("stopped", "stopped; the work tree is back on its last kept commit")])
                raise
            except Exception as exc:  # the loop's own errors (LoopError, RemoteError) say what to do
                self._emit([AgentStateChanged("crashed", str(exc) or type(exc).__name__)])

        self._emit([AgentStateChanged("running", "starting…")])
        self._future = asyncio.run_coroutine_threadsafe(body(), self._thread.loop)

    async def pause(self) -> None:
        if not self.running or self._stop is None or self._thread is None:
            return
        self._pausing = True
        self._emit([AgentStateChanged("running", "pausing after the running experiment…")])
        self._thread.loop.call_soon_threadsafe(self._stop.set)

    async def stop(self) -> None:
        if self._future is None:
            return
        self._future.cancel()
        try:
            await asyncio.wrap_future(self._future)
        except (asyncio.CancelledError, Exception):
            pass
        self._future = None

    async def events(self) -> AsyncIterator[AgentEvent]:
        if self._queue is None:
            self._queue = asyncio.Queue()
        self._ui_loop = asyncio.get_running_loop()
        while True:
            yield await self._queue.get()

    async def close(self) -> None:
        await self.stop()
        if self._thread is not None:
            self._thread.stop()
            self._thread = None


def local_loop_factory(bounty_dir: Path, workdir: Path, *, seed: int = 0) -> RunFactory:
    """The offline loop of `l402tui agent --local DIR` with the built-in search proposer."""

    async def run(on_event: Callable[[Any], None], stop: asyncio.Event) -> Any:
        from l402tui.agent.loop import ExperimentLoop
        from l402tui.agent.public_eval import HarnessEvaluator
        from l402tui.agent.search import SearchProposer
        from l402tui.agent.workspace import Workspace
        from l402tui.bounty import load_bounty
        from l402tui.bounty.package import build_package

        spec = await asyncio.to_thread(load_bounty, bounty_dir)
        package = await asyncio.to_thread(build_package, spec)
        ws = await asyncio.to_thread(Workspace.open_or_create, workdir, package.data, branch=f"l402tui/{spec.name}",
                                     description=f"{spec.name} package {package.sha256[:12]}")
        loop = ExperimentLoop(ws, SearchProposer(seed=seed), HarnessEvaluator(), on_event=on_event)
        return await loop.run(stop=stop)

    return run


def remote_loop_factory(cfg: Any, url: str, bounty_id: str | None, agents_dir: Path) -> RunFactory:
    """The loop of `l402tui agent --coordinator URL`: pays the L402 fees from the agent's
    wallet node, submits when its best is good enough, claims what it is owed."""

    async def run(on_event: Callable[[Any], None], stop: asyncio.Event) -> Any:
        from l402tui.agent.public_eval import HarnessEvaluator
        from l402tui.agent.remote import CoordinatorClient
        from l402tui.agent.search import SearchProposer
        from l402tui.agent.session import AgentSession
        from l402tui.lightning import make_backend

        wallet = make_backend(cfg, node=cfg.get("agent.node"))
        if getattr(wallet, "name", "") == "sim":
            await wallet.net.create_node(wallet.node_name, 0, exist_ok=True)
        try:
            async with CoordinatorClient(url, wallet, spend_cap_sats=int(cfg.get("agent.spend_cap_sats"))) as client:
                chosen = bounty_id
                if not chosen:
                    open_ones = [b for b in await client.bounties() if b.status == "OPEN" and b.pool_left_sats > 0]
                    if not open_ones:
                        raise RuntimeError("no OPEN bounty with pool left yet; start the agent again once one opens")
                    chosen = open_ones[0].id
                session = AgentSession(client, chosen, agents_dir / chosen, SearchProposer(),
                                       evaluator=HarnessEvaluator(), on_event=on_event)
                return await session.run(stop=stop)
        finally:
            await wallet.close()

    return run
