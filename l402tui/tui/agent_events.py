"""The agent side panel's interface to the autoresearch loop, without Textual.

The loop (``l402tui/agent/loop.py``) reports progress as events; the panel only
needs these few shapes, so an adapter turns the loop's own events into them.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import AsyncIterator, Sequence, Union

AGENT_STATES = ("idle", "running", "paused", "stopped", "crashed")


@dataclass(frozen=True)
class AgentExperiment:
    """One row of results.tsv: an experiment the loop ran and judged."""

    commit: str
    metric: float | None
    status: str  # keep | discard | crash
    description: str
    created_at: float


@dataclass(frozen=True)
class AgentStep:
    """What the loop is doing right now, e.g. "evaluating candidate 12"."""

    text: str


@dataclass(frozen=True)
class AgentLogLine:
    text: str


@dataclass(frozen=True)
class AgentStateChanged:
    state: str  # one of AGENT_STATES
    detail: str = ""
    minimize: bool | None = None  # the metric's direction, once the loop knows it


AgentEvent = Union[AgentExperiment, AgentStep, AgentLogLine, AgentStateChanged]


class AgentController(abc.ABC):
    """Start, pause and stop one agent loop and follow its events."""

    description: str = ""
    minimize: bool = True  # direction of the bounty's headline metric, for "best so far"

    @abc.abstractmethod
    async def start(self) -> None: ...

    @abc.abstractmethod
    async def pause(self) -> None: ...

    @abc.abstractmethod
    async def stop(self) -> None: ...

    @abc.abstractmethod
    def events(self) -> AsyncIterator[AgentEvent]:
        """Events from now on; runs until cancelled."""


def experiments_per_hour(experiments: Sequence[AgentExperiment], now: float, window_s: float = 3600.0) -> float:
    """Experiments finished in the last ``window_s`` seconds, scaled to an hour.

    With less history than the window, the rate is taken over the span since the
    first experiment (at least a minute) so a fresh run does not read as 1/hour."""
    recent = [e.created_at for e in experiments if now - e.created_at <= window_s]
    if not recent:
        return 0.0
    span = min(window_s, max(60.0, now - min(recent)))
    return len(recent) * 3600.0 / span


def best_so_far(experiments: Sequence[AgentExperiment], minimize: bool = True) -> list[float]:
    """The running best metric over kept experiments, one value per kept experiment."""
    best: float | None = None
    out: list[float] = []
    for e in experiments:
        if e.status != "keep" or e.metric is None:
            continue
        if best is None or (e.metric < best if minimize else e.metric > best):
            best = e.metric
        out.append(best)
    return out
