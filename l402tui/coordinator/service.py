"""The coordinator service: the one way bounty, submission, payout and review state changes.

HTTP handlers, the TUI in-process, the demo and the CLI all call this object (or, for
the money, the methods of :class:`service_payouts.PayoutOperations` it inherits); its
collaborators take the narrow :class:`core.CoordinatorCore`.  Every transition is one
SQLite transaction that also writes an ``events`` row, is guarded by the state it
starts from (``coordinator/lifecycle.py``), so replaying it (after a crash, or a
duplicated Lightning update) changes nothing, and wakes the event followers and the
tick when it commits, whoever opened it on this store.

Bounty:     DRAFT -> AWAITING_FUNDING -> OPEN -> CLOSED -> SETTLED
            DRAFT/AWAITING_FUNDING -> CANCELED (also OPEN before any payout)
Submission: (coordinator/submissions.py)
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator

from l402tui.config import Config
from l402tui.coordinator import lifecycle, payouts, publishing, submissions
from l402tui.coordinator.errors import Conflict
from l402tui.coordinator.posting_fees import book_posting_fee
from l402tui.coordinator.service_payouts import PayoutOperations
from l402tui.coordinator.service_reads import CoordinatorReads
from l402tui.domain import CANCELABLE_BOUNTY, FINAL_INVOICE, PAYABLE
from l402tui.lightning.backend import InvoiceState, LightningBackend, LightningError
from l402tui.store import Store
from l402tui.store.db import Txn

log = logging.getLogger("l402tui.coordinator")


class Coordinator(CoordinatorReads, PayoutOperations):
    """Bounty lifecycle, funding escrow, submissions, payouts and the event stream."""

    def __init__(self, cfg: Config, store: Store, backend: LightningBackend):
        self.cfg = cfg
        self.store = store
        self.backend = backend
        self.data_dir = cfg.data_dir
        self._tasks: list[asyncio.Task] = []
        self._changed = asyncio.Event()  # event followers wait on it
        self._committed_since_pass = True  # the tick's own-commit mark (no query needed)
        store.on_commit.append(self._on_commit)
        self.tick_s = 1.0  # how often the tick looks for changes (a flag and one PRAGMA)
        self.idle_ticks = 10  # a full pass at least every idle_ticks * tick_s, changed or not

    def _on_commit(self, txn: Txn) -> None:
        """Every commit on this store, by the service or the payouts engine alike."""
        self._committed_since_pass = True
        self._changed.set()
        _log_events(txn.events)

    # -- lifetime -----------------------------------------------------------------

    @classmethod
    async def open(cls, cfg: Config, backend: LightningBackend | None = None) -> "Coordinator":
        store = await Store.open(cfg.db_path)
        if backend is None:
            from l402tui.lightning import make_backend

            backend = make_backend(cfg, cfg.get("lightning.node"))
        return cls(cfg, store, backend)

    async def start(self) -> None:
        """Catch up on anything missed while down, then follow Lightning and the clock."""
        from l402tui.coordinator.reconcile import reconcile_at_start

        await reconcile_at_start(self)  # the node is the truth about money: lost rows recovered or reported
        await self.reconcile()
        # Accepted and revealed (an unrevealed one is paid when its release timer runs).
        for row in await self.store.fetchall(
                "SELECT id FROM submissions WHERE status = 'ACCEPTED' AND id NOT IN (SELECT subject_id FROM "
                "timers WHERE kind = 'verdict_release' AND done_at IS NULL)"):
            await self._after_transition(f"on_accepted({row['id']})",
                                         payouts.on_accepted(self.store, self.backend, self.cfg, row["id"]))
        self._tasks = [asyncio.create_task(self._follow_invoices(), name="coordinator-invoices"),
                       asyncio.create_task(self._tick(), name="coordinator-tick")]

    async def stop(self) -> None:
        if self._tail_pump is not None:
            self._tasks.append(self._tail_pump)
            self._tail_pump = None
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - shutting down
                pass
        self._tasks = []

    async def close(self) -> None:
        await self.stop()
        if self._on_commit in self.store.on_commit:
            self.store.on_commit.remove(self._on_commit)
        await self.backend.close()
        await self.store.close()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Txn]:
        """The store's write transaction; its commit wakes followers and the tick (``_on_commit``)."""
        async with self.store.transaction() as txn:
            yield txn

    async def _tick(self) -> None:
        """Timers, evaluation verdicts, payouts and invoice reconciliation, when there is work.

        A full pass costs a dozen queries; run every second it was most of an idle
        coordinator's CPU.  Each ``tick_s`` this only looks at two marks: whether anything
        committed on this store since the last pass (set by ``_on_commit``: no query), and
        ``PRAGMA data_version`` on the store's read connection, which moves with commits by
        other processes (an evaluation worker elsewhere).  A full pass runs when either moved,
        when the earliest timer or payment retry falls due, after a pass that itself committed
        something (follow-up work), and at least every ``idle_ticks * tick_s`` as a backstop
        (invoice reconciliation with the node runs on that cadence too)."""
        version: int | None = None
        next_pass = 0.0
        last_reconcile = 0.0
        while True:
            try:
                now = time.time()
                ours, self._committed_since_pass = self._committed_since_pass, False
                seen, version = version, await self._data_version()
                if seen is not None and version != seen and not ours:
                    self._changed.set()  # event followers wake for other processes' commits too
                if ours or version != seen or now >= next_pass:
                    await self.run_due_timers()
                    await self.reconcile_evaluations()
                    backstop_s = self.idle_ticks * self.tick_s
                    if now - last_reconcile >= backstop_s:
                        await self.reconcile_invoices()
                        last_reconcile = now
                    # Payout retries, holdback timers, refunds of closed bounties (coordinator/payouts.py).
                    await self._after_transition("tick", payouts.tick(self.store, self.backend, self.cfg))
                    busy = self._committed_since_pass  # what this pass did may have made more work
                    version = await self._data_version()
                    next_pass = min(now + (self.tick_s if busy else backstop_s), await self._next_due())
            except Exception:  # noqa: BLE001 - a bad row must not stop the clock; it is logged
                log.exception("coordinator tick failed")
                version, next_pass = None, 0.0
            await asyncio.sleep(self.tick_s)

    async def _data_version(self) -> int:
        return int(await self.store.scalar("PRAGMA data_version") or 0)

    async def _next_due(self) -> float:
        """When the tick has timed work next: a timer, a payment retry; now while a
        payment is in flight (its outcome is checked every pass)."""
        due = await self.store.scalar(
            "SELECT MIN(t) FROM (SELECT MIN(due_at) AS t FROM timers WHERE done_at IS NULL "
            "UNION ALL SELECT MIN(next_attempt_at) FROM payments WHERE status IN ('QUEUED', 'FAILED') "
            "UNION ALL SELECT 0 FROM payments WHERE status = 'PENDING')")
        return float("inf") if due is None else float(due)

    async def _follow_invoices(self) -> None:
        delay = 1.0
        while True:
            try:
                async for update in self.backend.updates():
                    delay = 1.0
                    await self.apply_invoice_state(update.payment_hash, update.state)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the node may be restarting; retry
                log.warning("invoice stream ended (%s); retrying in %.0f s", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)

    async def reconcile(self) -> None:
        await self.reconcile_invoices()
        await self.run_due_timers()
        await self.reconcile_evaluations()

    # -- bounty creation -------------------------------------------------------------

    async def create_bounty(self, source: Path | str | bytes, *, self_funded: bool = False) -> dict[str, Any]:
        """Validate, freeze and publish a bounty from a folder or an uploaded tarball of one
        (see :func:`l402tui.coordinator.publishing.create_bounty`)."""
        return await publishing.create_bounty(self, source, self_funded=self_funded)

    def safe_hold_window_s(self) -> float:
        return publishing.safe_hold_window_s(self)

    async def _timer(self, txn: Txn, kind: str, subject_id: str, due_at: float) -> None:
        await txn.execute("INSERT OR IGNORE INTO timers (kind, subject_id, due_at, created_at) VALUES (?, ?, ?, ?)",
                          (kind, subject_id, due_at, time.time()))

    async def _set_bounty_status(self, txn: Txn, bounty_id: str, frm: str | tuple[str, ...], to: str,
                                 **payload: Any) -> bool:
        """Move a bounty from ``frm`` to ``to``; False (and no change) if it is elsewhere."""
        return await lifecycle.move_bounty(txn, bounty_id, frm, to, **payload)

    # -- funding and lifecycle -------------------------------------------------------

    async def apply_invoice_state(self, payment_hash: str, state: InvoiceState | str) -> None:
        """React to a Lightning state change of an invoice we issued (idempotent)."""
        state = InvoiceState(state)
        row = await self.store.fetchone("SELECT * FROM invoices WHERE payment_hash = ?", (payment_hash,))
        if row is None or row["status"] == state.value:
            return
        if row["status"] in FINAL_INVOICE:
            return  # final: a late or replayed update never reopens it
        async with self.transaction() as txn:
            changed = await txn.execute(
                "UPDATE invoices SET status = ?, updated_at = ? WHERE payment_hash = ? AND status = ?",
                (state.value, time.time(), payment_hash, row["status"]))
            if not changed:
                return
            if not (row["kind"] == "l402" and state in (InvoiceState.CANCELED, InvoiceState.EXPIRED)):
                # An unpaid L402 offer lapsing is no news (l402/unpaid.py prunes it): an event per
                # challenge would let anyone grow the event log from any number of addresses.
                await txn.event("invoice.status", payment_hash, invoice_kind=row["kind"], status=state.value,
                                bounty_id=row["bounty_id"], submission_id=row["submission_id"],
                                amount_msat=row["amount_msat"])
            if row["kind"] == "funding":
                if state is InvoiceState.ACCEPTED:
                    await self._set_bounty_status(txn, row["bounty_id"], "AWAITING_FUNDING", "OPEN",
                                                  funding="held")
                elif state in (InvoiceState.CANCELED, InvoiceState.EXPIRED):
                    # The sponsor's money is back with them (or never came): nothing to run a bounty on.
                    await self._set_bounty_status(txn, row["bounty_id"], ("DRAFT", "AWAITING_FUNDING", "OPEN"),
                                                  "CANCELED", reason=f"funding invoice {state.value.lower()}")
            elif row["kind"] == "stake" and state is InvoiceState.ACCEPTED:
                await submissions.stake_held(txn, row["submission_id"])
            elif row["kind"] == "stake" and state in (InvoiceState.CANCELED, InvoiceState.EXPIRED):
                await submissions.stake_lapsed(txn, row["submission_id"], state.value.lower())
            elif row["kind"] == "posting_fee" and state is InvoiceState.SETTLED:
                await book_posting_fee(txn, payment_hash)

    async def reconcile_invoices(self) -> None:
        """Ask the node about funding and stake invoices we still wait on (missed updates)."""
        rows = await self.store.fetchall(
            "SELECT payment_hash FROM invoices WHERE kind IN ('funding', 'stake', 'posting_fee') "
            "AND status IN ('OPEN', 'ACCEPTED')")
        for row in rows:
            try:
                invoice = await self.backend.lookup_invoice(row["payment_hash"])
            except LightningError as exc:
                log.warning("cannot look up invoice %s: %s", row["payment_hash"][:12], exc)
                continue
            await self.apply_invoice_state(row["payment_hash"], invoice.state)

    async def cancel_bounty(self, bounty_id: str, reason: str = "cancelled by the operator") -> dict[str, Any]:
        """Cancel a bounty that owes nothing: no payout booked and no submission accepted
        (between a verdict and its booked payout, or while payouts are halted, an accepted
        submission has no payment row yet; cancelling then would leave its agent unpaid).
        The funding hold is cancelled (refunded)."""
        bounty = await self._bounty_row(bounty_id)
        if bounty["status"] == "CANCELED":
            return await self.get_bounty(bounty_id)
        paid = await self.store.scalar(
            "SELECT COUNT(*) FROM payments WHERE bounty_id = ? AND purpose IN ('payout', 'holdback')", (bounty_id,))
        paid += await self.store.scalar(
            f"SELECT COUNT(*) FROM submissions WHERE bounty_id = ? AND status IN ({','.join('?' * len(PAYABLE))})",
            (bounty_id, *PAYABLE))
        if bounty["status"] not in CANCELABLE_BOUNTY or paid:
            raise Conflict(f"bounty {bounty_id} is {bounty['status']}"
                           f"{' and has paid out or owes an accepted submission' if paid else ''}; "
                           "only a bounty that owes nothing can be cancelled — close it instead",
                           code="cannot_cancel")
        if bounty["funding_payment_hash"]:
            try:
                await self.backend.cancel_hold(bounty["funding_payment_hash"])
            except LightningError as exc:
                raise Conflict(f"the funding hold could not be cancelled ({exc}); retry", code="lightning_error")
        # Submissions waiting on this bounty end with it, and their stakes go back to the agents.
        waiting = await self.store.fetchall(
            "SELECT id, stake_payment_hash FROM submissions WHERE bounty_id = ? AND status IN "
            "('RECEIVED', 'AWAITING_STAKE', 'QUEUED', 'EVALUATING')", (bounty_id,))
        for sub in waiting:
            if sub["stake_payment_hash"]:
                try:
                    await self.backend.cancel_hold(sub["stake_payment_hash"])
                except LightningError as exc:
                    raise Conflict(f"the stake hold of {sub['id']} could not be cancelled ({exc}); retry",
                                   code="lightning_error")
        async with self.transaction() as txn:
            await self._set_bounty_status(txn, bounty_id, ("DRAFT", "AWAITING_FUNDING", "OPEN"), "CANCELED",
                                          reason=reason)
            for sub in waiting:
                await submissions.end_with_bounty(txn, sub["id"], bounty_id)
            if bounty["funding_payment_hash"]:
                await txn.execute("UPDATE invoices SET status = 'CANCELED', updated_at = ? "
                                  "WHERE payment_hash = ? AND status IN ('OPEN', 'ACCEPTED')",
                                  (time.time(), bounty["funding_payment_hash"]))
            await txn.execute("UPDATE timers SET done_at = ? WHERE subject_id = ? AND done_at IS NULL",
                              (time.time(), bounty_id))
        return await self.get_bounty(bounty_id)

    async def close_bounty(self, bounty_id: str, reason: str = "closed by the operator") -> dict[str, Any]:
        """OPEN -> CLOSED: no more submissions; reveal the held-out salts; payouts refunds the rest."""
        bounty = await self._bounty_row(bounty_id)
        if bounty["status"] == "AWAITING_FUNDING":
            return await self.cancel_bounty(bounty_id, reason=f"{reason} before it was funded")
        if bounty["status"] in ("CLOSED", "SETTLED"):
            return await self.get_bounty(bounty_id)
        if bounty["status"] != "OPEN":
            raise Conflict(f"bounty {bounty_id} is {bounty['status']}; only an OPEN bounty can be closed",
                           code="cannot_close")
        async with self.transaction() as txn:
            await lifecycle.close_bounty(txn, bounty_id, reason)
        await self._after_transition(f"on_bounty_closed({bounty_id})",
                                     payouts.on_bounty_closed(self.store, self.backend, self.cfg, bounty_id))
        return await self.get_bounty(bounty_id)

    async def run_due_timers(self, now: float | None = None) -> int:
        now = time.time() if now is None else now
        due = await self.store.fetchall(
            "SELECT * FROM timers WHERE done_at IS NULL AND due_at <= ? AND kind IN ('bounty_deadline', "
            "'funding_expiry') ORDER BY due_at", (now,))
        for timer in due:
            bounty = await self.store.fetchone("SELECT status FROM bounties WHERE id = ?", (timer["subject_id"],))
            if bounty is None:
                continue
            if timer["kind"] == "bounty_deadline" and bounty["status"] == "OPEN":
                await self.close_bounty(timer["subject_id"], reason="deadline reached")
            elif bounty["status"] == "AWAITING_FUNDING":
                await self.cancel_bounty(timer["subject_id"], reason="funding invoice expired unpaid")
            async with self.transaction() as txn:
                await txn.execute("UPDATE timers SET done_at = ? WHERE id = ? AND done_at IS NULL",
                                  (time.time(), timer["id"]))
        return len(due)

    async def ensure_sellable(self, bounty_id: str, capability: str) -> None:
        """Refuse to sell a token for a bounty that cannot use it (before any invoice is made)."""
        row = await self._bounty_row(bounty_id)
        if row["status"] != "OPEN" and not (capability == "download" and row["status"] in ("CLOSED", "SETTLED")):
            raise Conflict(f"bounty {bounty_id} is {row['status']}; it does not take {capability} requests",
                           code="bounty_not_open")

    # -- submissions (the rules live in coordinator/submissions.py) ------------------------

    async def submit(self, bounty_id: str, token_id: str, diff: str, *, claimed_score: float | None = None,
                     payout_destination: str | None = None) -> dict[str, Any]:
        return await submissions.submit(self, bounty_id, token_id, diff, claimed_score=claimed_score,
                                        payout_destination=payout_destination)

    async def reconcile_evaluations(self) -> int:
        """Bring submissions and baselines up to date with the evaluation queue's rows, then run
        what due verdicts cause; the number of rows brought up to date."""
        done = await submissions.reconcile_evaluations(self)
        for bounty_id, error in done.failed_baselines:
            # Nothing can be judged against a baseline that was not measured: stop selling tokens
            # for it and give the sponsor the pool back (docs/payouts.md), with the reason.
            try:
                await self.cancel_bounty(bounty_id, reason=f"the baseline evaluation failed: {error}; "
                                         "fix the bounty and create it again")
            except Conflict as exc:
                log.warning("bounty %s: baseline failed but it cannot be cancelled: %s", bounty_id, exc)
        released = await self.release_due_verdicts()
        return done.changed + len(released - done.decided)

    async def release_due_verdicts(self, now: float | None = None) -> set[str]:
        """Run what revealed decisions cause: the stake's resolution and, if ACCEPTED, the payout.
        The ids of the submissions released."""
        released = set()
        for timer in await submissions.due_verdicts(self.store, time.time() if now is None else now):
            s = timer["subject_id"]
            await self._after_transition(f"on_verdict({s})", payouts.on_verdict(self.store, self.backend, self.cfg, s))
            if timer["status"] == "ACCEPTED":
                await self._after_transition(f"on_accepted({s})",
                                             payouts.on_accepted(self.store, self.backend, self.cfg, s))
            async with self.transaction() as txn:
                await txn.execute("UPDATE timers SET done_at = ? WHERE id = ? AND done_at IS NULL",
                                  (time.time(), timer["id"]))
            released.add(s)
        return released


_LOGGED_FIELDS = ("status", "reason", "name", "pool_sats", "improvement", "invoice_kind", "amount_sats")


def _log_events(events: list[dict[str, Any]]) -> None:
    """One readable line per committed state change (what `l402tui serve` shows)."""
    for e in events:
        fields = " ".join(f"{k}={e['payload'][k]}" for k in _LOGGED_FIELDS if e["payload"].get(k) is not None)
        log.info("%s %s %s", e["kind"], e["subject_id"] or "", fields)
