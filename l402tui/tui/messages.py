"""Messages workers send back to the UI (Harlequin style: workers never touch widgets)."""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from l402tui.telemetry.gpu import GpuSnapshot
from l402tui.telemetry.host import HostReading
from l402tui.tui.agent_events import AgentEvent
from l402tui.tui.source import (BountyRow, CoordinatorSource, EvaluationRow, LedgerRow, SourceEvent,
                                SubmissionRow)


@dataclass
class SourceReady(Message):
    source: CoordinatorSource


@dataclass
class SourceFailed(Message):
    """Opening or reading the coordinator failed; ``what`` says which step."""

    what: str
    error: str


@dataclass
class BountiesLoaded(Message):
    rows: list[BountyRow]


@dataclass
class SubmissionsLoaded(Message):
    rows: list[SubmissionRow]


@dataclass
class LedgerLoaded(Message):
    rows: list[LedgerRow]


@dataclass
class EvaluationsLoaded(Message):
    rows: list[EvaluationRow]


@dataclass
class EvalLogRead(Message):
    evaluation_id: int
    lines: list[str]
    offset: int


@dataclass
class CoordinatorEvent(Message):
    event: SourceEvent


@dataclass
class TelemetrySampled(Message):
    gpu: GpuSnapshot
    host: HostReading


@dataclass
class AgentEventReceived(Message):
    event: AgentEvent


@dataclass
class ActionFinished(Message):
    """A sponsor action finished; ``error`` is set when it failed (shown, nothing lost)."""

    what: str
    message: str
    error: bool = False


@dataclass
class StoryTold(Message):
    """A line of the demo's narration (`l402tui demo`), ``at_s`` seconds after it began."""

    at_s: float
    line: str


@dataclass
class StoryEnded(Message):
    """The demo's story is complete; ``summary`` is a demo.story.StorySummary."""

    summary: object
