"""Typed progress events of the agent loop, for the TUI side panel and the CLI line.

The loop calls a plain callback with each event; :class:`EventFeed` turns that into an
async iterator for consumers that prefer one.  No UI imports here: the TUI maps these
onto its own messages.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import AsyncIterator, Callable, Union


@dataclass(frozen=True)
class LoopStarted:
    bounty: str
    branch: str
    work_tree: str
    resumed: bool  # True when results.tsv already had rows
    experiments_done: int
    best_metric: float | None
    metric_name: str
    direction: str


@dataclass(frozen=True)
class ExperimentStarted:
    number: int  # 1-based, counted over the whole results.tsv
    description: str


@dataclass(frozen=True)
class ExperimentFinished:
    number: int
    status: str  # keep | discard | crash
    metric: float | None  # None for a crash
    commit: str  # short hash, as in results.tsv
    description: str
    duration_s: float
    reason: str  # why it was kept, discarded or crashed


@dataclass(frozen=True)
class BestImproved:
    metric: float
    previous: float | None
    commit: str


@dataclass(frozen=True)
class LoopProgress:
    experiments: int  # this session
    kept: int
    crashed: int
    per_hour: float
    best_metric: float | None
    elapsed_s: float


@dataclass(frozen=True)
class LoopStopped:
    reason: str
    experiments: int


@dataclass(frozen=True)
class SubmissionSent:
    submission_id: str
    bounty_id: str
    commit: str
    public_metric: float
    paid_sats: int  # spent on the coordinator so far this session (download, submit, stakes)


@dataclass(frozen=True)
class VerdictReceived:
    submission_id: str
    status: str  # ACCEPTED | REJECTED | FLAGGED | ...
    improvement: float | None
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class PayoutClaimed:
    submission_id: str
    amount_msat: int
    purpose: str  # payout | holdback
    status: str  # the coordinator's payment status (COMPLETE once paid)


@dataclass(frozen=True)
class RemoteProblem:
    """The coordinator could not be used just now; the loop goes on and retries later."""

    message: str


AgentEvent = Union[LoopStarted, ExperimentStarted, ExperimentFinished, BestImproved, LoopProgress, LoopStopped,
                   SubmissionSent, VerdictReceived, PayoutClaimed, RemoteProblem]
EventCallback = Callable[[AgentEvent], None]


class EventFeed:
    """A callback that queues events, read back with ``async for event in feed``.

    The feed ends after a :class:`LoopStopped` event.  ``maxsize`` bounds memory when
    nobody reads: the oldest event is dropped to make room (a progress panel wants the
    latest state, not every step).
    """

    def __init__(self, maxsize: int = 1000):
        self._queue: asyncio.Queue[AgentEvent] = asyncio.Queue(maxsize)

    def __call__(self, event: AgentEvent) -> None:
        if self._queue.full():
            self._queue.get_nowait()
        self._queue.put_nowait(event)

    async def __aiter__(self) -> AsyncIterator[AgentEvent]:
        while True:
            event = await self._queue.get()
            yield event
            if isinstance(event, LoopStopped):
                return
