"""The autoresearch loop: propose → evaluate on the public set → keep or reset → log.

One experiment (:meth:`ExperimentLoop.step`):

1. the proposer edits the mutable files in the work tree;
2. edits outside the mutable globs, or no edit at all, are a ``crash`` (the coordinator
   would reject such a diff anyway);
3. the change, read as one diff against the baseline, is evaluated with the bounty's
   repeats inside a per-experiment time budget; a failure or timeout is a ``crash``;
4. if it beats the best by more than the noise margin (``judge``) it is committed with
   the metric in its message; else it is set aside as a stash entry (a commit with a
   hash) and the tree is back on the last kept commit;
5. a row goes to ``results.tsv``.

Order matters for kill -9: a kept commit is written before its row (resume adds a
missing row from the commit message); a crash row is written before its reset (resume
finishes the reset); setting a discard aside and resetting is one git step.  Git and file work runs in a thread so an event
loop shared with a UI never stalls on it.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import asdict, dataclass, field

from l402tui.agent.events import (AgentEvent, BestImproved, EventCallback, ExperimentFinished,
                                  ExperimentStarted, LoopProgress, LoopStarted, LoopStopped)
from l402tui.agent.judge import headline, judge
from l402tui.agent.proposers import Proposal, ProposalContext, Proposer, ProposerFailed
from l402tui.agent.public_eval import Candidate, EvalFailed, Evaluator, HarnessEvaluator, PublicScore
from l402tui.agent.results import ResultRow, ResultsLog
from l402tui.agent.workspace import Change, Workspace
from l402tui.bounty.spec import BountySpec
from l402tui.evaluation.diffcheck import is_mutable

BEST_FILE = "best.json"


class LoopError(Exception):
    """The loop cannot start or go on (e.g. the unchanged baseline does not evaluate)."""


@dataclass
class LoopSettings:
    repeats: int | None = None  # None: the bounty's [noise] repeats
    k_sigma: float | None = None  # None: the bounty's [noise] k_sigma
    experiment_timeout_s: float | None = None  # run-phase time per experiment; None: run.timeout_s × repeats


@dataclass
class LoopSummary:
    experiments: int = 0
    kept: int = 0
    discarded: int = 0
    crashed: int = 0
    baseline_metric: float | None = None
    best_metric: float | None = None
    stopped_because: str = ""
    rows: list[ResultRow] = field(default_factory=list)


class ExperimentLoop:
    def __init__(self, workspace: Workspace, proposer: Proposer, evaluator: Evaluator | None = None, *,
                 spec: BountySpec | None = None, settings: LoopSettings | None = None,
                 on_event: EventCallback | None = None):
        self.ws = workspace
        self.spec = spec or workspace.spec()
        self.proposer = proposer
        self.evaluator = evaluator or HarnessEvaluator()
        self.settings = settings or LoopSettings()
        self._on_event = on_event
        self.log = ResultsLog(workspace.results_path)
        self.history: list[ResultRow] = []
        self.best: PublicScore | None = None
        self.best_commit: str | None = None
        self.baseline: PublicScore | None = None  # guards are checked against it, as on the coordinator
        self._session = LoopSummary()
        self._started = time.monotonic()
        self._prepared = False

    # settings derived from the bounty ----------------------------------------------------

    @property
    def repeats(self) -> int:
        return self.settings.repeats or self.spec.repeats

    @property
    def k_sigma(self) -> float:
        return self.spec.k_sigma if self.settings.k_sigma is None else self.settings.k_sigma

    @property
    def experiment_timeout_s(self) -> float:
        return self.settings.experiment_timeout_s or self.spec.run.timeout_s * self.repeats

    def _candidate(self, diff: str) -> Candidate:
        return Candidate(self.spec, diff, self.experiment_timeout_s / self.repeats)

    async def _evaluate(self, diff: str) -> PublicScore:
        # The harness kills each run at its share of the budget; this outer limit only
        # catches a stuck scorer.
        outer = self.experiment_timeout_s + self.spec.score.timeout_s * self.repeats + 30.0
        return await asyncio.wait_for(self.evaluator.evaluate(self._candidate(diff), self.repeats), outer)

    @property
    def best_metric(self) -> float | None:
        return headline(self.spec, self.best) if self.best else None

    def emit(self, event: AgentEvent) -> None:
        if self._on_event is not None:
            self._on_event(event)

    # start and resume ----------------------------------------------------------------------

    async def prepare(self) -> None:
        """Bring the work tree and results.tsv to a consistent state and know the best score.

        Resets a half-done experiment, restores rows a kill lost, and evaluates the
        baseline (first start) or the last kept commit (when its score was not saved)."""
        await asyncio.to_thread(self._recover_files)
        resumed = bool(self.history)
        last_kept = self.ws.last_kept()
        saved = self._load_best()
        if saved and saved[0] == last_kept:
            self.best_commit, self.best, self.baseline = saved
        else:
            score = await self._evaluate_current("the baseline" if not self.history else "the last kept commit")
            self.best, self.best_commit = score, last_kept
            if last_kept == self.ws.baseline:
                self.baseline = score
            elif saved:
                self.baseline = saved[2]
            await asyncio.to_thread(self._save_best)
            if not self.history:
                row = ResultRow(last_kept[:7], headline(self.spec, score), score.memory_gb, "keep", "baseline")
                await asyncio.to_thread(self.log.append, row)
                self.history.append(row)
        self._session.baseline_metric = self._baseline_metric()
        self._prepared = True
        primary = self.spec.primary_metric
        self.emit(LoopStarted(self.spec.name, self.ws.branch, str(self.ws.root), resumed, len(self.history),
                              self.best_metric, primary.name, primary.direction))

    def _recover_files(self) -> None:
        self.log.ensure()
        self.ws.recover()
        self.history = self.log.read()
        recorded = {r.commit for r in self.history if r.status == "keep"}
        for kept in self.ws.kept_commits():
            if kept.sha[:7] not in recorded:  # killed between the keep commit and its row
                row = ResultRow(kept.sha[:7], kept.metric or 0.0, kept.memory_gb or 0.0, "keep", kept.description)
                self.log.append(row)
                self.history.append(row)

    async def _evaluate_current(self, what: str) -> PublicScore:
        diff = await asyncio.to_thread(self.ws.diff, "HEAD")
        try:
            return await self._evaluate(diff)
        except (EvalFailed, asyncio.TimeoutError) as exc:
            raise LoopError(f"{what} does not evaluate on the public set: {_why(exc)}. Run "
                            f"`l402tui bounty try` on the bounty folder to see the full logs") from None

    def _baseline_metric(self) -> float | None:
        for row in self.history:
            if row.status == "keep":
                return row.metric
        return None

    def _load_best(self) -> tuple[str, PublicScore, PublicScore | None] | None:
        path = self.ws.scratch / BEST_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            baseline = PublicScore(**data["baseline"]) if data.get("baseline") else None
            return data["commit"], PublicScore(**data["score"]), baseline
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _save_best(self) -> None:
        assert self.best is not None
        path = self.ws.scratch / BEST_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"commit": self.best_commit, "score": asdict(self.best),
                                   "baseline": asdict(self.baseline) if self.baseline else None}), encoding="utf-8")
        tmp.replace(path)

    # one experiment ----------------------------------------------------------------------------

    async def step(self) -> ResultRow:
        if not self._prepared:
            await self.prepare()
        assert self.best is not None
        number = len(self.history)  # the baseline row is experiment 0
        started = time.monotonic()
        ctx = ProposalContext(self.spec, self.ws.root, self.ws.target, tuple(self.history), self.best_metric,
                              number, self.experiment_timeout_s)
        try:
            proposal = await self.proposer.propose(ctx)
        except ProposerFailed as exc:
            proposal = Proposal(f"proposer failed: {exc}")
            self.emit(ExperimentStarted(number, proposal.description))
            return await self._crash(number, proposal, str(exc), started)
        self.emit(ExperimentStarted(number, proposal.description))

        change = await asyncio.to_thread(self.ws.read_change)
        prefix = self.ws.target_dir + "/"
        outside = [p for p in change.paths if not (p.startswith(prefix) and is_mutable(self.spec, p[len(prefix):]))]
        if outside:
            return await self._crash(number, proposal, "edited files outside the mutable set "
                                     f"({', '.join(self.spec.mutable)}): {', '.join(outside[:5])}", started)
        if not change.is_new:
            return await self._crash(number, proposal, "the proposer changed nothing", started)
        try:
            score = await self._evaluate(change.target_diff)
        except asyncio.TimeoutError:
            return await self._crash(number, proposal, "the evaluation did not finish in time (a stuck "
                                     "scorer?)", started, evaluated=True)
        except EvalFailed as exc:
            return await self._crash(number, proposal, str(exc), started, evaluated=True)

        verdict = judge(self.spec, score, self.best, self.k_sigma, self.baseline)
        metric = headline(self.spec, score)
        if verdict.better:
            previous = self.best_metric
            row = await asyncio.to_thread(self._keep, change, proposal.description, score, metric)
            self.emit(BestImproved(metric, previous, row.commit))
        else:
            row = await asyncio.to_thread(self._reject, "discard", proposal.description, metric, score.memory_gb,
                                          True)
        return self._finish(number, row, metric, verdict.reason, started)

    async def _crash(self, number: int, proposal: Proposal, reason: str, started: float, *,
                     evaluated: bool = False) -> ResultRow:
        row = await asyncio.to_thread(self._reject, "crash", proposal.description, 0.0, 0.0, evaluated)
        return self._finish(number, row, None, reason, started)

    def _recover_after_cancel(self) -> None:
        self.ws.reopen()
        self.ws.recover()

    # Each runs in one worker thread: git and file work in order, off the event loop.

    def _keep(self, change: Change, description: str, score: PublicScore, metric: float) -> ResultRow:
        kept = self.ws.keep(change, description, metric, score.memory_gb)  # the commit first: see the module doc
        self.best, self.best_commit = score, kept
        self._save_best()
        row = ResultRow(kept[:7], metric, score.memory_gb, "keep", description)
        self.log.append(row)
        return row

    def _reject(self, status: str, description: str, metric: float, memory_gb: float, evaluated: bool) -> ResultRow:
        """Log a discard or crash and reset.  An evaluated edit is set aside as a commit the
        row names; otherwise the row names the last kept commit."""
        if evaluated:
            sha = self.ws.reject(description)  # set aside and reset in one step
            row = ResultRow(sha[:7], metric, memory_gb, status, description)
            self.log.append(row)
        else:
            row = ResultRow((self.best_commit or self.ws.baseline)[:7], metric, memory_gb, status, description)
            self.log.append(row)  # the row before the reset: see the module doc
            self.ws.discard(clean=True)
        return row

    def _finish(self, number: int, row: ResultRow, metric: float | None, reason: str, started: float) -> ResultRow:
        self.history.append(row)
        s = self._session
        s.experiments += 1
        s.rows.append(row)
        s.kept += row.status == "keep"
        s.discarded += row.status == "discard"
        s.crashed += row.status == "crash"
        self.emit(ExperimentFinished(number, row.status, metric, row.commit, row.description,
                                     time.monotonic() - started, reason))
        elapsed = time.monotonic() - self._started
        self.emit(LoopProgress(s.experiments, s.kept, s.crashed, s.experiments * 3600.0 / max(elapsed, 1e-9),
                               self.best_metric, elapsed))
        return row

    # forever ----------------------------------------------------------------------------------

    async def run(self, max_experiments: int | None = None, stop: asyncio.Event | None = None,
                  deadline_s: float | None = None) -> LoopSummary:
        """Run experiments until ``stop`` is set, ``max_experiments`` ran, or ``deadline_s``
        (seconds from now) passed; by default, forever.  Cancelling it resets the work tree
        to the last kept commit before the cancellation goes on."""
        reason = "cancelled"
        try:
            await self.prepare()
            ends = None if deadline_s is None else time.monotonic() + deadline_s
            while True:
                if stop is not None and stop.is_set():
                    reason = "stopped"
                    break
                if max_experiments is not None and self._session.experiments >= max_experiments:
                    reason = "reached the experiment limit"
                    break
                if ends is not None and time.monotonic() >= ends:
                    reason = "time is up"
                    break
                await self.step()
        except asyncio.CancelledError:
            await asyncio.shield(asyncio.to_thread(self._recover_after_cancel))
            raise
        finally:
            self.ws.release()
            self._session.best_metric = self.best_metric
            self._session.stopped_because = reason
            self.emit(LoopStopped(reason, self._session.experiments))
        return self._session

    @property
    def summary(self) -> LoopSummary:
        self._session.best_metric = self.best_metric
        return self._session


def _why(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return "it ran past the experiment time budget"
    return str(exc)
