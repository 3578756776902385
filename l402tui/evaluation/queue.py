"""The persistent evaluation queue on the store's ``evaluations`` / ``eval_runs`` tables.

Rows move QUEUED → RUNNING → DONE | FAILED, each step one transaction.  Claiming
is a guarded ``UPDATE ... WHERE status = 'QUEUED'`` so two workers never take the
same row.  A coordinator killed mid-evaluation leaves a RUNNING row;
:meth:`EvaluationQueue.recover` (call it once at start-up, before any worker)
puts it back to QUEUED, and the repeat rows of the lost attempt are replaced when
it runs again.  Completion writes the runs, the medians, DONE and the caller's
verdict (``on_done``, inside the same transaction) at once, and only if the row is
still RUNNING — so an evaluation yields exactly one verdict however often the
process dies.  A row whose attempts reach ``max_attempts`` (it keeps killing the
coordinator) is FAILED instead of re-queued.

Stopping the worker (``stop``) cancels evaluations still running: the evaluator
kills their sandboxes and the row goes back to QUEUED (:meth:`release`) without
spending an attempt, so an operator's restart costs a re-run, not a verdict.

Order: round-robin by bounty (the bounty whose last evaluation started longest ago
goes next), then FIFO within a bounty, so one bounty's burst does not starve
another's.  A bounty's evaluations wait for its own earlier baseline to finish
(a candidate is judged against it).  With a :class:`SlotGate` (several evaluations
at once, slots.py) each candidate head is offered to the gate, which leases it a
slot, says it does not fit now (try the next bounty), or ``HOLD``: nothing behind it
may start (it waits for cores; letting smaller work pass would starve it).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, Awaitable, Callable, Protocol

from l402tui.bounty import BountySpec, load_bounty
from l402tui.evaluation.harness import EvaluationResult
from l402tui.store.db import Store, Txn, now

log = logging.getLogger(__name__)

EvaluateFn = Callable[[dict[str, Any]], Awaitable[EvaluationResult]]
OnDone = Callable[[Txn, dict[str, Any], EvaluationResult], Awaitable[None]]
KINDS = ("baseline", "submission", "stability", "audit")
HOLD = object()  # a SlotGate's answer: this row waits and nothing after it may start



async def load_row_inputs(store: Store, row: dict[str, Any]) -> "tuple[BountySpec, str | None] | EvaluationResult":
    """What a queued row evaluates: the bounty's frozen copy and the submission's diff (None
    for a baseline), or the FAILED result saying which of them is missing.  One loader for
    the local worker and the Ray executor."""
    bounty = await store.fetchone("SELECT source_dir FROM bounties WHERE id = ?", (row["bounty_id"],))
    if bounty is None or not bounty["source_dir"]:
        return EvaluationResult("failed", [f"bounty {row['bounty_id']} has no frozen copy to evaluate"])
    spec = load_bounty(bounty["source_dir"])
    if not row["submission_id"]:
        return spec, None
    sub = await store.fetchone("SELECT diff FROM submissions WHERE id = ?", (row["submission_id"],))
    if sub is None:
        return EvaluationResult("failed", [f"submission {row['submission_id']} does not exist"])
    return spec, sub["diff"]

class EvaluationLost(Exception):
    """The machine running an evaluation went away (a Ray node died): run it again,
    spending an attempt, so a diff that keeps killing nodes ends FAILED."""

# The next evaluation of each bounty (its oldest QUEUED row), unless the bounty's
# earlier baseline is still queued or running; least recently started bounty first.
_HEADS = """
SELECT e.* FROM evaluations e
WHERE e.status = 'QUEUED'
  AND e.id = (SELECT MIN(q.id) FROM evaluations q WHERE q.bounty_id = e.bounty_id AND q.status = 'QUEUED')
  AND NOT EXISTS (SELECT 1 FROM evaluations b WHERE b.bounty_id = e.bounty_id AND b.kind = 'baseline'
                  AND b.status IN ('QUEUED', 'RUNNING') AND b.id < e.id)
ORDER BY COALESCE((SELECT MAX(s.started_at) FROM evaluations s WHERE s.bounty_id = e.bounty_id), 0), e.id
"""


class SlotGate(Protocol):
    """Admission of a row to a slot of the machine (the worker's, in worker.py)."""

    async def admit(self, row: dict[str, Any]) -> Any:
        """A lease (truthy), None (does not fit now: try the next bounty) or HOLD."""

    def release(self, lease: Any) -> None:
        ...


class EvaluationQueue:
    def __init__(self, store: Store, *, max_concurrent: int = 1, max_attempts: int = 3):
        if max_concurrent < 1:
            raise ValueError("max_concurrent must be at least 1")
        self.store = store
        self.max_concurrent = max_concurrent
        self.max_attempts = max_attempts
        self._wake = asyncio.Event()

    async def enqueue(self, bounty_id: str, *, kind: str, submission_id: str | None = None,
                      heldout_set: int = 0, txn: Txn | None = None) -> int:
        """Add work; pass ``txn`` to enqueue inside the caller's own transaction."""
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
        row = {"bounty_id": bounty_id, "submission_id": submission_id, "kind": kind, "heldout_set": heldout_set,
               "status": "QUEUED", "attempts": 0, "created_at": now()}
        if txn is not None:
            evaluation_id = await txn.insert("evaluations", row)
            await txn.event("evaluation.queued", str(evaluation_id), bounty_id=bounty_id, eval_kind=kind,
                            submission_id=submission_id)
        else:
            async with self.store.transaction() as own:
                evaluation_id = await own.insert("evaluations", row)
                await own.event("evaluation.queued", str(evaluation_id), bounty_id=bounty_id, eval_kind=kind,
                                submission_id=submission_id)
        self._wake.set()
        return evaluation_id

    async def recover(self) -> list[int]:
        """Re-queue work a dead process left RUNNING (or fail it after too many attempts)."""
        requeued: list[int] = []
        async with self.store.transaction() as txn:
            for row in await txn.fetchall("SELECT id, attempts FROM evaluations WHERE status = 'RUNNING'"):
                if row["attempts"] >= self.max_attempts:
                    error = (f"the coordinator stopped during this evaluation {row['attempts']} times; "
                             "giving up (see the eval log)")
                    await txn.execute("UPDATE evaluations SET status = 'FAILED', error = ?, finished_at = ? "
                                      "WHERE id = ?", (error, now(), row["id"]))
                    await txn.event("evaluation.failed", str(row["id"]), error=error)
                else:
                    await txn.execute("UPDATE evaluations SET status = 'QUEUED', started_at = NULL WHERE id = ?",
                                      (row["id"],))
                    await txn.event("evaluation.requeued", str(row["id"]), attempts=row["attempts"])
                    requeued.append(row["id"])
        if requeued:
            self._wake.set()
        return requeued

    async def claim(self, sandbox: str = "", gate: SlotGate | None = None) -> dict[str, Any] | None:
        """Take the next QUEUED evaluation (see the module doc for the order), marking it
        RUNNING; None when there is none (or none the gate admits now).  With ``gate`` the
        row carries its lease as ``row["slot"]``."""
        for head in await self.store.fetchall(_HEADS):
            lease = await gate.admit(head) if gate is not None else None
            if lease is HOLD:
                return None
            if gate is not None and lease is None:
                continue
            row = await self._mark_running(head["id"], sandbox)
            if row is None:  # another worker took it meanwhile
                if gate is not None:
                    gate.release(lease)
                continue
            if gate is not None:
                row["slot"] = lease
            return row
        return None

    async def _mark_running(self, evaluation_id: int, sandbox: str) -> dict[str, Any] | None:
        async with self.store.transaction() as txn:
            row = await txn.fetchone("SELECT * FROM evaluations WHERE id = ? AND status = 'QUEUED'",
                                     (evaluation_id,))
            if row is None:
                return None
            changed = await txn.execute(
                "UPDATE evaluations SET status = 'RUNNING', attempts = attempts + 1, started_at = ?, sandbox = ? "
                "WHERE id = ? AND status = 'QUEUED'", (now(), sandbox, row["id"]))
            if changed != 1:
                return None
            await txn.event("evaluation.running", str(row["id"]), bounty_id=row["bounty_id"],
                            submission_id=row["submission_id"], attempt=row["attempts"] + 1)
        row.update(status="RUNNING", attempts=row["attempts"] + 1, sandbox=sandbox)
        return row

    async def complete(self, row: dict[str, Any], result: EvaluationResult, *, on_done: OnDone | None = None) -> bool:
        """Record a finished evaluation and (through ``on_done``) its verdict in one
        transaction; False if the row was no longer RUNNING (already completed)."""
        # A refused diff has no metrics to judge: FAILED, with the refusal reasons as the error.
        status = "DONE" if result.status == "ok" else "FAILED"
        async with self.store.transaction() as txn:
            changed = await txn.execute(
                "UPDATE evaluations SET status = ?, metrics_json = ?, spread_json = ?, sandbox = ?, error = ?, "
                "reason_code = ?, finished_at = ? WHERE id = ? AND status = 'RUNNING'",
                (status, json.dumps(result.medians), json.dumps(result.spreads), result.sandbox,
                 "; ".join(result.reasons) or None, result.code, now(), row["id"]))
            if changed != 1:
                return False
            await txn.execute("DELETE FROM eval_runs WHERE evaluation_id = ?", (row["id"],))
            for run in result.runs:
                await txn.insert("eval_runs", {
                    "evaluation_id": row["id"], "repeat": run.repeat, "metrics_json": json.dumps(run.metrics),
                    "wall_s": run.wall_s, "cpu_s": run.cpu_s,
                    "peak_rss_kb": int(run.peak_rss_mb * 1024) if run.peak_rss_mb is not None else None,
                    "exit_code": run.exit_code, "log_path": run.log_path, "outputs_sha256": run.outputs_sha256})
            if on_done is not None:
                await on_done(txn, row, result)
            await txn.event(f"evaluation.{status.lower()}", str(row["id"]), bounty_id=row["bounty_id"],
                            submission_id=row["submission_id"], result=result.agent_view())
        return True

    async def release(self, row: dict[str, Any]) -> bool:
        """Put a RUNNING row back to QUEUED because this process is stopping (not the
        evaluation's fault, so the attempt is given back); False if it was no longer RUNNING."""
        async with self.store.transaction() as txn:
            changed = await txn.execute(
                "UPDATE evaluations SET status = 'QUEUED', started_at = NULL, attempts = MAX(attempts - 1, 0) "
                "WHERE id = ? AND status = 'RUNNING'", (row["id"],))
            if changed:
                await txn.event("evaluation.requeued", str(row["id"]), attempts=max(row["attempts"] - 1, 0),
                                reason="stopped")
        return bool(changed)

    async def requeue_lost(self, row: dict[str, Any], error: str) -> bool:
        """Put a RUNNING row whose machine was lost back to QUEUED (the attempt stays
        spent), or FAILED once it reached ``max_attempts``; False if no longer RUNNING."""
        async with self.store.transaction() as txn:
            if row["attempts"] >= self.max_attempts:
                error = f"lost {row['attempts']} times, giving up: {error}"
                changed = await txn.execute("UPDATE evaluations SET status = 'FAILED', error = ?, reason_code = ?, "
                                            "finished_at = ? WHERE id = ? AND status = 'RUNNING'",
                                            (error, "internal_error", now(), row["id"]))
                if changed:
                    await txn.event("evaluation.failed", str(row["id"]), error=error)
            else:
                changed = await txn.execute("UPDATE evaluations SET status = 'QUEUED', started_at = NULL "
                                            "WHERE id = ? AND status = 'RUNNING'", (row["id"],))
                if changed:
                    await txn.event("evaluation.requeued", str(row["id"]), attempts=row["attempts"], reason=error)
        if changed:
            self._wake.set()
        return bool(changed)

    async def fail(self, row: dict[str, Any], error: str) -> None:
        async with self.store.transaction() as txn:
            changed = await txn.execute("UPDATE evaluations SET status = 'FAILED', error = ?, reason_code = ?, "
                                        "finished_at = ? WHERE id = ? AND status = 'RUNNING'",
                                        (error, "internal_error", now(), row["id"]))
            if changed:
                await txn.event("evaluation.failed", str(row["id"]), error=error)

    async def run(self, evaluate: EvaluateFn, *, on_done: OnDone | None = None, sandbox: str = "",
                  stop: asyncio.Event | None = None, idle_exit: bool = False, poll_s: float = 1.0,
                  gate: SlotGate | None = None) -> int:
        """Work the queue with up to ``max_concurrent`` evaluations at once until
        ``stop`` is set (or, with ``idle_exit``, until nothing is queued or running).
        On ``stop`` evaluations still running are cancelled and re-queued; one already
        being recorded is let finish (a short transaction).
        Returns how many evaluations this call completed."""
        stop = stop or asyncio.Event()
        slots = asyncio.Semaphore(self.max_concurrent)
        active: set[asyncio.Task] = set()
        evaluating: set[asyncio.Task] = set()  # cancelled on stop; the rest are recording a result
        completed = 0

        async def work(row: dict[str, Any]) -> None:
            nonlocal completed
            me = asyncio.current_task()
            evaluating.add(me)
            try:
                try:
                    result = await evaluate(row)
                finally:
                    evaluating.discard(me)
            except asyncio.CancelledError:
                await self.release(row)
                raise
            except EvaluationLost as exc:
                log.warning("evaluation %s lost its machine: %s", row["id"], exc)
                await self.requeue_lost(row, str(exc))
            except Exception as exc:  # a bug in evaluation must not kill the worker or lose the row
                log.exception("evaluation %s crashed", row["id"])
                await self.fail(row, f"internal error while evaluating: {exc.__class__.__name__}: {exc}")
            else:
                if await self.complete(row, result, on_done=on_done):
                    completed += 1
            finally:
                if gate is not None and "slot" in row:
                    gate.release(row["slot"])
                slots.release()

        while not stop.is_set():
            if not await _acquire_unless_stopped(slots, stop):
                break
            row = await self.claim(sandbox, gate)
            if row is None:
                slots.release()
                if idle_exit and not active:
                    break
                self._wake.clear()
                waiters = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())]
                if active:
                    waiters.append(asyncio.ensure_future(asyncio.wait(set(active))))
                await asyncio.wait(waiters, timeout=poll_s, return_when=asyncio.FIRST_COMPLETED)
                for w in waiters:
                    w.cancel()
                continue
            task = asyncio.create_task(work(row))
            active.add(task)
            task.add_done_callback(active.discard)
        if stop.is_set():
            for task in list(evaluating):
                task.cancel()
        if active:
            await asyncio.gather(*active, return_exceptions=True)
        return completed


async def _acquire_unless_stopped(slots: asyncio.Semaphore, stop: asyncio.Event) -> bool:
    """A slot, or False once ``stop`` is set (every slot may be busy for minutes)."""
    acquire = asyncio.ensure_future(slots.acquire())
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({acquire, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        if not acquire.done():
            acquire.cancel()
    if not acquire.done() or acquire.cancelled():
        return False
    if stop.is_set():
        slots.release()
        return False
    return True
