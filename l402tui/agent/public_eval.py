"""Scoring a candidate on the bounty's PUBLIC set, on the agent's own machine.

The loop only needs the small :class:`Evaluator` protocol.  :class:`HarnessEvaluator`
is the real one: it calls the coordinator's own two-phase harness
(:func:`l402tui.evaluation.harness.evaluate`) with ``eval_set="public"``, so the agent
scores exactly as the coordinator will (same diff checks, same phases, same metric
collection), only on the public set.  The default sandbox is ``local``: this is the
agent's own code on the agent's own machine.
"""

from __future__ import annotations

import asyncio
import os
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

from l402tui.bounty.spec import BountySpec

LOG_TAIL_LINES = 8  # of the run's own output, added to a crash reason (the agent's own code, its own logs)


class EvalFailed(Exception):
    """The candidate could not be scored (refused diff, crash, timeout, no metrics); the text says why."""


@dataclass(frozen=True)
class Candidate:
    spec: BountySpec  # rooted at the pristine baseline copy (Workspace.spec())
    diff: str  # target/ changes against the baseline, paths relative to target/ ("" for the baseline)
    time_limit_s: float | None = None  # per run phase; None: the bounty's own limit


@dataclass(frozen=True)
class PublicScore:
    metrics: dict[str, float]  # median per metric over the repeats
    spread: dict[str, float] = field(default_factory=dict)  # sample stdev per metric (0 for one repeat)
    repeats: int = 1
    peak_rss_mb: float = 0.0  # largest run-phase peak RSS over the repeats, measured from outside
    samples: dict[str, list[float]] = field(default_factory=dict)  # per metric, one value per repeat

    @property
    def memory_gb(self) -> float:
        return self.peak_rss_mb / 1024.0


class Evaluator(Protocol):
    """What the loop needs: a public-set score for a candidate, or :class:`EvalFailed`."""

    async def evaluate(self, candidate: Candidate, repeats: int) -> PublicScore: ...


class HarnessEvaluator:
    """The coordinator's harness on the public set."""

    def __init__(self, sandbox=None, parallel: int = 0):
        if sandbox is None:
            from l402tui.evaluation.sandbox import LocalSandbox

            sandbox = LocalSandbox()
        self.sandbox = sandbox
        self.parallel = parallel  # repeats at once; 0: as many as the cores hold at the bounty's cpus each

    def _parallel(self, spec) -> int:
        if self.parallel > 0:
            return self.parallel
        return max(1, (os.cpu_count() or 1) // max(1, int(spec.cpus or 1)))

    async def evaluate(self, candidate: Candidate, repeats: int) -> PublicScore:
        from l402tui.evaluation import harness
        from l402tui.evaluation.sandbox import RUN_GROUP, Limits, RunGroup

        spec = candidate.spec
        limit = min(spec.run.timeout_s, spec.time_limit_s)
        if candidate.time_limit_s is not None:
            limit = min(limit, candidate.time_limit_s)
        tail: deque[str] = deque(maxlen=LOG_TAIL_LINES)
        group = RunGroup()
        token = RUN_GROUP.set(group)  # copied into the harness's threads with the context
        try:
            result = await harness.evaluate(
                spec, candidate.diff or None, eval_set="public", sandbox=self.sandbox, repeats=repeats,
                allow_unsandboxed=True, log=tail.append, parallel=self._parallel(spec),
                limits=Limits(memory_mb=spec.memory_mb, cpus=spec.cpus, time_limit_s=limit, gpu=spec.gpu))
        except asyncio.CancelledError:
            # The harness works in a thread that cannot be cancelled; end the runs it
            # started (and any it starts from now on) so the thread, and Ctrl-C, do not
            # wait for them.  Only this evaluation's: another agent in this process goes on.
            group.cancel()
            raise
        finally:
            RUN_GROUP.reset(token)
        if not result.ok:
            reason = "; ".join(result.reasons) or f"evaluation {result.status}"
            output = " | ".join(line.strip() for line in tail if line.strip() and "[harness]" not in line)
            raise EvalFailed(f"{reason}{f' (last output: {output})' if output and result.status == 'failed' else ''}")
        peak = max((r.peak_rss_mb or 0.0) for r in result.runs) if result.runs else 0.0
        samples = {name: [r.metrics[name] for r in result.runs if name in r.metrics] for name in result.medians}
        return PublicScore(dict(result.medians), dict(result.spreads), len(result.runs), peak, samples)
