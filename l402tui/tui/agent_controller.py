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
from dataclasses import dataclass
from typing import Any, AsyncIterator, Awaitable, Callable

from l402tui.tui import format as fmt
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
        return [AgentLogLine(f"best {fmt.score(event.previous)} -> {fmt.score(event.metric)} at {event.commit}")]
    if kind == "LoopProgress":
        return []  # the panel computes rates from the experiments themselves
    if kind == "LoopStopped":
        return [AgentStateChanged("stopped", event.reason)]
    if kind == "BountySwitched":
        line = AgentLogLine(describe(event))
        if event.new is None:
            return [line, AgentStateChanged("stopped", f"{event.reason} and no other bounty is OPEN")]
        return [line, AgentStateChanged("running", f"following {event.new} ({event.reason})")]
    return [AgentLogLine(describe(event))]  # submissions, verdicts, claims, problems


@dataclass(frozen=True)
class BountySwitched:
    """The followed bounty closed; the loop moves to another OPEN one (or stops)."""

    old: str
    new: str | None
    reason: str


def describe(event: Any) -> str:
    """One agent event as a line a person reads (never a Python repr)."""
    kind = type(event).__name__
    if kind == "SubmissionSent":
        return (f"submitted {event.submission_id} to {event.bounty_id}: commit {event.commit}, public "
                f"{fmt.score(event.public_metric)} (spent {event.paid_sats:,} sat so far)")
    if kind == "VerdictReceived":
        gain = f", improvement {fmt.percent(event.improvement)}" if event.improvement is not None else ""
        why = f" ({fmt.reasons_text(list(event.reasons))})" if event.reasons else ""
        return f"verdict on {event.submission_id}: {event.status}{gain}{why}"
    if kind == "PayoutClaimed":
        return f"claimed {event.purpose} of {event.submission_id}: {fmt.sats(event.amount_msat)} sat, {event.status}"
    if kind == "RemoteProblem":
        return f"coordinator problem (retrying later): {event.message}"
    if kind == "BountySwitched":
        return f"{event.reason}; now following {event.new}" if event.new else f"{event.reason}; stopping"
    name = "".join(f" {c.lower()}" if c.isupper() else c for c in kind).strip()
    fields = getattr(event, "__dataclass_fields__", None)
    if fields:
        return name + ": " + ", ".join(f"{k.replace('_', ' ')} {_plain(getattr(event, k))}" for k in fields)
    return name


def _plain(value: Any) -> str:
    if isinstance(value, float):
        return fmt.score(value)
    return str(value)


def explain_failure(exc: BaseException, wallet: str = "") -> AgentStateChanged:
    """Why the loop ended, as the panel should say it.  An empty wallet is a state to fix
    (deposit and start again), not a crash."""
    text = str(exc) or type(exc).__name__
    lowered = text.lower()
    name = wallet or "the agent's wallet"
    if type(exc).__name__ == "InsufficientBalance" or "insufficient" in lowered or "balance" in lowered:
        return AgentStateChanged("stopped", f"{name} cannot pay: {text}. Deposit on the simulated network "
                                            f"(`l402tui wallet deposit {wallet or 'NODE'} 100000`) and press s")
    if "spending cap" in lowered:
        return AgentStateChanged("stopped", f"{text}. Then press s")
    if "no open bounty" in lowered:
        return AgentStateChanged("stopped", text)
    return AgentStateChanged("crashed", text)


class LoopAgentController(AgentController):
    def __init__(self, run: RunFactory, *, description: str, minimize: bool = True, wallet_name: str = ""):
        self._run = run
        self.wallet_name = wallet_name
        self._task: asyncio.Task | None = None
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
            self._task = asyncio.current_task()
            try:
                await self._run(self._on_loop_event, self._stop)
            except asyncio.CancelledError:
                self._emit([AgentStateChanged("stopped", "stopped; the work tree is back on its last kept commit")])
                raise
            except Exception as exc:  # the loop's own errors (LoopError, RemoteError) say what to do
                self._emit([explain_failure(exc, self.wallet_name)])

        self._emit([AgentStateChanged("running", "starting…")])
        self._future = asyncio.run_coroutine_threadsafe(body(), self._thread.loop)

    async def pause(self) -> None:
        if not self.running or self._stop is None or self._thread is None:
            return
        self._pausing = True
        self._emit([AgentStateChanged("running", "pausing after the running experiment…")])
        self._thread.loop.call_soon_threadsafe(self._stop.set)

    async def stop(self) -> None:
        """Cancel the loop and wait, on its own thread, until it has cleaned up (work tree
        reset, wallet closed): cancelling the cross-thread future alone returns at once and
        leaves the cleanup to run while the thread is torn down."""
        if self._future is None:
            return
        task, thread = self._task, self._thread
        if task is not None and thread is not None and not task.done():
            async def cancel_and_wait() -> None:
                task.cancel()
                await asyncio.wait({task}, timeout=10)

            try:
                await thread.run(cancel_and_wait())
            except (asyncio.CancelledError, Exception):
                pass
        else:
            self._future.cancel()
        try:
            await asyncio.wait_for(asyncio.wrap_future(self._future), timeout=1)
        except (asyncio.CancelledError, Exception):
            pass
        self._future = None
        self._task = None

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


async def next_open_bounty(client: Any, skip: set[str]) -> str | None:
    open_ones = [b for b in await client.bounties()
                 if b.status == "OPEN" and b.pool_left_sats > 0 and b.id not in skip]
    return open_ones[0].id if open_ones else None


async def run_while_open(session: Any, client: Any, bounty_id: str, stop: asyncio.Event,
                         poll_s: float = 15.0) -> tuple[Any, str | None]:
    """Run ``session`` until ``stop`` or until its bounty leaves OPEN; returns (summary,
    the bounty's new status or None).  Experimenting on a closed bounty earns nothing."""
    inner = asyncio.Event()
    closed: list[str] = []

    async def watch() -> None:
        while not inner.is_set():
            await asyncio.sleep(poll_s)
            try:
                status = next((b.status for b in await client.bounties() if b.id == bounty_id), "gone")
            except Exception:  # the coordinator restarting: look again later
                continue
            if status != "OPEN":
                closed.append(status)
                inner.set()

    async def relay() -> None:
        await stop.wait()
        inner.set()

    helpers = [asyncio.create_task(watch()), asyncio.create_task(relay())]
    try:
        summary = await session.run(stop=inner)
    finally:
        for task in helpers:
            task.cancel()
        await asyncio.gather(*helpers, return_exceptions=True)
    return summary, (closed[0] if closed else None)


def remote_loop_factory(cfg: Any, url: str, bounty_id: str | None, agents_dir: Path,
                        bounty_poll_s: float = 15.0) -> RunFactory:
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
                chosen = bounty_id or await next_open_bounty(client, set())
                if not chosen:
                    raise RuntimeError("no OPEN bounty with pool left yet; start the agent again once one opens")
                done: set[str] = set()
                while True:
                    session = AgentSession(client, chosen, agents_dir / chosen, SearchProposer(),
                                           evaluator=HarnessEvaluator(), on_event=on_event)
                    summary, closed = await run_while_open(session, client, chosen, stop, poll_s=bounty_poll_s)
                    if not closed or stop.is_set():
                        return summary
                    done.add(chosen)
                    nxt = await next_open_bounty(client, done)
                    on_event(BountySwitched(chosen, nxt, f"bounty {chosen} is {closed}"))
                    if nxt is None:
                        return summary
                    chosen = nxt
        finally:
            await wallet.close()

    return run
