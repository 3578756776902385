"""An agent working one coordinator bounty: download, loop, submit, follow, claim.

The experiment loop runs undisturbed; beside it, each new best is weighed for
submission (:func:`should_submit`), a submission's verdict is followed, and what an
accepted one is owed is claimed with invoices from the agent's wallet.  Submissions are
recorded in ``.l402tui/submissions.json`` in the work tree, so a restarted agent goes on
following and claiming them, and never sends the same commit twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from l402tui.agent.events import (AgentEvent, BestImproved, EventCallback, LoopStarted, LoopStopped, PayoutClaimed,
                                  RemoteProblem, SubmissionSent, VerdictReceived)
from l402tui.agent.judge import headline
from l402tui.agent.loop import ExperimentLoop, LoopSettings, LoopSummary
from l402tui.agent.proposers import Proposer
from l402tui.agent.public_eval import Evaluator, PublicScore
from l402tui.agent.remote import (CLAIMABLE, FINAL, IN_FLIGHT, PAYABLE, CoordinatorClient, RemoteBounty,
                                  RemoteError)
from l402tui.agent.workspace import Workspace
from l402tui.bounty.spec import BountySpec
from l402tui.evaluation.scoring import composite_gain

SUBMISSIONS_FILE = "submissions.json"
SETTLED = ("REJECTED", "FLAGGED", "PAID_FULL", "HOLDBACK_FORFEITED")
CLAIM_PATIENCE_S = 120.0
HOLDBACK_POLL_MAX_S = 15.0


@dataclass
class SubmissionRecord:
    id: str
    bounty_id: str
    commit: str
    diff_sha256: str
    public_metric: float
    status: str = "RECEIVED"
    claimed_msat: int = 0  # paid to us, as the coordinator shows it (COMPLETE payments)
    paid_keys: list[str] = field(default_factory=list)  # which payments claimed_msat counts


def should_submit(spec: BountySpec, bounty: RemoteBounty, best: PublicScore,
                  baseline: PublicScore | None) -> tuple[bool, str]:
    """Submit when the public gain of our best over the baseline beats the gain of the
    bounty's current best over its baseline by the bounty's minimum.  (Held-out and
    public numbers differ, but gains over each set's own baseline are comparable.)"""
    if bounty.status != "OPEN":
        return False, f"the bounty is {bounty.status}, not OPEN"
    if bounty.pool_left_sats <= 0:
        return False, "the pool is spent"
    if baseline is None:
        return False, "the public baseline is not known in this work tree"
    ours = composite_gain(spec, best.metrics, baseline.metrics)
    theirs = 0.0
    published = (bounty.raw.get("best") or {}).get("published") or {}
    if published.get("improvement") is not None:
        # The coordinator publishes the best's improvement over the baseline, rounded down to its noise step.
        theirs = float(published["improvement"])
    elif bounty.baseline and bounty.best:
        try:
            theirs = composite_gain(spec, bounty.best, bounty.baseline)
        except KeyError:
            theirs = 0.0
    need = max(spec.min_improvement, 1e-9)
    if ours - theirs > need:
        return True, f"public gain {ours:.2%} beats the current best's {theirs:.2%} by more than {need:.2%}"
    return False, f"public gain {ours:.2%} does not beat the current best's {theirs:.2%} by {need:.2%}"


class AgentSession:
    def __init__(self, client: CoordinatorClient, bounty_id: str, workdir: Path, proposer: Proposer, *,
                 evaluator: Evaluator | None = None, settings: LoopSettings | None = None,
                 on_event: EventCallback | None = None, payout_destination: str | None = None,
                 poll_s: float = 1.0):
        self.client = client
        self.bounty_id = bounty_id
        self.workdir = Path(workdir)
        self.proposer = proposer
        self.evaluator = evaluator
        self.settings = settings
        self._on_event = on_event
        self.payout_destination = payout_destination
        self.poll_s = poll_s
        self.loop: ExperimentLoop | None = None
        self.records: list[SubmissionRecord] = []
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task] = set()
        self._watchers: set[asyncio.Task] = set()
        self._submit_lock = asyncio.Lock()

    def emit(self, event: AgentEvent) -> None:
        if self._on_event is not None:
            self._on_event(event)

    def _loop_event(self, event: AgentEvent) -> None:
        if isinstance(event, LoopStopped):
            return  # the session says when it stops, after its remote work
        if isinstance(event, (BestImproved, LoopStarted)):
            self._wake.set()  # LoopStarted: a resumed best may already be worth sending
        self.emit(event)

    @property
    def ws(self) -> Workspace:
        assert self.loop is not None
        return self.loop.ws

    async def open(self) -> ExperimentLoop:
        """The work tree for the bounty: downloaded and paid for on first use, reused after."""
        bounty = await self.client.bounty(self.bounty_id)
        if (self.workdir / ".git").exists():
            ws = Workspace(self.workdir)
        else:
            package = await self.client.download(self.bounty_id, bounty.package_sha256)
            ws = await asyncio.to_thread(Workspace.create, self.workdir, package, branch=f"l402tui/{self.bounty_id}",
                                         description=f"{bounty.name} ({self.bounty_id}) package {bounty.package_sha256[:12]}")
        self.loop = ExperimentLoop(ws, self.proposer, self.evaluator, settings=self.settings,
                                   on_event=self._loop_event)
        self.records = self._load_records()
        return self.loop

    # records ---------------------------------------------------------------------------------

    def _records_path(self) -> Path:
        return self.ws.scratch / SUBMISSIONS_FILE

    def _load_records(self) -> list[SubmissionRecord]:
        try:
            return [SubmissionRecord(**r) for r in json.loads(self._records_path().read_text(encoding="utf-8"))]
        except (OSError, ValueError, TypeError):
            return []

    def _save_records(self) -> None:
        path = self._records_path()
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps([asdict(r) for r in self.records], indent=1), encoding="utf-8")
        tmp.replace(path)

    # the remote side -------------------------------------------------------------------------

    async def maybe_submit(self) -> SubmissionRecord | None:
        """Submit the best commit if it is worth it and not sent yet; None otherwise."""
        assert self.loop is not None
        async with self._submit_lock:
            loop = self.loop
            if loop.best is None or loop.best_commit is None or loop.best_commit == self.ws.baseline:
                return None
            if any(r.commit == loop.best_commit for r in self.records):
                return None
            if any(r.status not in FINAL for r in self.records):
                return None  # wait: an accepted pending one moves the bar
            bounty = await self.client.bounty(self.bounty_id)
            ok, _why = should_submit(loop.spec, bounty, loop.best, loop.baseline)
            if not ok:
                return None
            commit = loop.best_commit
            diff = await asyncio.to_thread(self.ws.diff, commit)
            metric = headline(loop.spec, loop.best)
            view = await self.client.submit(self.bounty_id, diff, claimed_score=metric,
                                            payout_destination=self.payout_destination)
            record = SubmissionRecord(view["id"], self.bounty_id, commit, hashlib.sha256(diff.encode()).hexdigest(),
                                      metric, view.get("status", "RECEIVED"))
            self.records.append(record)
            self._save_records()
            self.emit(SubmissionSent(record.id, self.bounty_id, commit[:7], metric, self.client.spent_sats))
            self._spawn(self.follow(record))
            return record

    async def follow(self, record: SubmissionRecord) -> None:
        """Wait for the verdict, then claim what is owed (again later for the holdback)."""
        view = await self.client.wait_for_verdict(record.id, poll_s=self.poll_s)
        record.status = view["status"]
        self._save_records()
        verdict = view.get("verdict") or {}
        self.emit(VerdictReceived(record.id, record.status, verdict.get("improvement"),
                                  tuple(view.get("reasons") or ())))
        # Paid work, or the refundable part of a rejected submission's stake (docs/payouts.md).
        if (record.status in PAYABLE or (record.status == "REJECTED" and view.get("stake"))) \
                and not self.payout_destination:
            await self.settle_claims(record)
        self._wake.set()  # the bar may have moved: reconsider the best
        if record.status in PAYABLE and not self.payout_destination:
            # Watched beside the loop, not awaited when it ends: a holdback may take days.
            self._spawn(self.watch_holdback(record), watcher=True)

    async def watch_holdback(self, record: SubmissionRecord) -> None:
        """An accepted submission's holdback is decided by a stability check later on:
        poll (backing off to HOLDBACK_POLL_MAX_S) until the submission is settled, and
        claim the holdback as soon as it is released."""
        delay = self.poll_s
        while record.status not in SETTLED:
            await asyncio.sleep(delay)
            delay = min(delay * 2, HOLDBACK_POLL_MAX_S)
            rows = await self.client.payout_rows(record.id)
            if any(r.get("status") in CLAIMABLE for r in rows):
                await self.settle_claims(record)
                delay = self.poll_s
            view = await self.client.submission(record.id)
            if view["status"] != record.status:
                record.status = view["status"]
                self._save_records()

    async def settle_claims(self, record: SubmissionRecord) -> int:
        """Claim what is owed until the coordinator shows it paid.  The payouts of an
        accepted submission may appear a moment after the verdict, and a claim the
        coordinator could not pay (FAILED) is asked again: both are polled, backing off,
        for up to CLAIM_PATIENCE_S.  Counts only payments shown COMPLETE; returns the msat
        newly paid."""
        before = record.claimed_msat
        loop = asyncio.get_running_loop()
        ends = loop.time() + CLAIM_PATIENCE_S
        delay = self.poll_s
        while True:
            rows = await self.client.payout_rows(record.id)
            if any(r.get("status") in CLAIMABLE for r in rows):
                await self.client.claim(record.id, record.bounty_id)
                rows = await self.client.payout_rows(record.id)
            for row in rows:
                key = row.get("idempotency_key") or f"{row.get('purpose')}:{row.get('payment_hash')}"
                if row.get("status") == "COMPLETE" and key not in record.paid_keys:
                    record.paid_keys.append(key)
                    record.claimed_msat += int(row["amount_msat"])
                    self.emit(PayoutClaimed(record.id, int(row["amount_msat"]), row.get("purpose", "payout"),
                                            "COMPLETE"))
            self._save_records()
            waiting = not rows or any(r.get("status") in CLAIMABLE + IN_FLIGHT for r in rows)
            if not waiting or loop.time() >= ends:
                break
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
        return record.claimed_msat - before

    def _spawn(self, coro: Any, *, watcher: bool = False) -> None:
        task = asyncio.create_task(self._guarded(coro))
        group = self._watchers if watcher else self._tasks
        group.add(task)
        task.add_done_callback(group.discard)

    async def _guarded(self, coro: Any) -> Any:
        try:
            return await coro
        except RemoteError as exc:
            self.emit(RemoteProblem(str(exc)))
            return None

    async def _remote_worker(self) -> None:
        for record in self.records:  # resumed: pick up what a previous run left open
            if record.status not in SETTLED:
                self._spawn(self.follow(record))
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self._guarded(self.maybe_submit())

    async def run(self, max_experiments: int | None = None, stop: asyncio.Event | None = None,
                  deadline_s: float | None = None, settle_timeout_s: float = 300.0) -> LoopSummary:
        """Run the loop with submissions beside it; when the loop ends, give pending
        verdicts and claims up to ``settle_timeout_s`` to finish."""
        if self.loop is None:
            await self.open()
        assert self.loop is not None
        self._wake.set()
        worker = asyncio.create_task(self._remote_worker())
        reason = "cancelled"
        try:
            summary = await self.loop.run(max_experiments, stop, deadline_s)
            reason = summary.stopped_because
            await self._guarded(self.maybe_submit())
            if self._tasks:
                await asyncio.wait(set(self._tasks), timeout=settle_timeout_s)
            return summary
        finally:
            worker.cancel()
            for task in [*self._tasks, *self._watchers]:
                task.cancel()
            await asyncio.gather(worker, *self._tasks, *self._watchers, return_exceptions=True)
            self.emit(LoopStopped(reason, self.loop.summary.experiments))
