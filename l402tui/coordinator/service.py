"""The coordinator service: the one place bounty and submission state changes.

The TUI (in-process) and the HTTP app (``coordinator/app.py``) both call this
object; handlers hold no logic.  Every transition is one SQLite transaction that
also writes an ``events`` row, and is guarded by the state it starts from, so
replaying it (after a crash, or a duplicated Lightning update) changes nothing.

Bounty:     DRAFT -> AWAITING_FUNDING -> OPEN -> CLOSED -> SETTLED
            DRAFT/AWAITING_FUNDING -> CANCELED (also OPEN before any payout)
Submission: (coordinator/submissions.py)
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator

from l402tui.config import Config
from l402tui.coordinator import disclosure, publishing, seams, submissions
from l402tui.coordinator.errors import Conflict, NotFound
from l402tui.coordinator.payout_funding import pool_left
from l402tui.coordinator.views import bounty_view, event_view
from l402tui.domain import CANCELABLE_BOUNTY, FINAL_INVOICE, LISTED_BOUNTY, sql_list
from l402tui.lightning.backend import InvoiceState, LightningBackend, LightningError
from l402tui.store import Store
from l402tui.store.db import Txn

log = logging.getLogger("l402tui.coordinator")


class Coordinator:
    """Bounty lifecycle, funding escrow, submissions and the event stream."""

    def __init__(self, cfg: Config, store: Store, backend: LightningBackend):
        self.cfg = cfg
        self.store = store
        self.backend = backend
        self.data_dir = cfg.data_dir
        self._tasks: list[asyncio.Task] = []
        self._changed = asyncio.Event()
        self.tick_s = 1.0  # how often the tick looks for changes (a counter and one PRAGMA)
        self.idle_ticks = 10  # a full pass at least every idle_ticks * tick_s, changed or not

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
            await self._payouts("on_accepted", row["id"])
        self._tasks = [asyncio.create_task(self._follow_invoices(), name="coordinator-invoices"),
                       asyncio.create_task(self._tick(), name="coordinator-tick")]

    async def stop(self) -> None:
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
        await self.backend.close()
        await self.store.close()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Txn]:
        async with self.store.transaction() as txn:
            txn.after_commit.append(self._changed.set)
            txn.after_commit.append(lambda: _log_events(txn.events))
            yield txn

    async def _tick(self) -> None:
        """Timers, evaluation verdicts, payouts and invoice reconciliation, when there is work.

        A full pass costs a dozen queries; run every second it was most of an idle
        coordinator's CPU.  Each ``tick_s`` this only compares two counters: the write
        connection's ``total_changes`` and ``PRAGMA data_version`` read on the store's
        read connection, which moves with every commit by any other connection (the
        store's own write connection included, and an external worker's).  A full pass runs when either moved, when the earliest
        timer or payment retry falls due, after a pass that itself changed something
        (follow-up work), and at least every ``idle_ticks * tick_s`` as a backstop
        (invoice reconciliation with the node runs on that cadence too)."""
        seen: tuple[int, int] | None = None
        next_pass = 0.0
        last_reconcile = 0.0
        while True:
            try:
                now = time.time()
                marks = await self._change_marks()
                if seen is not None and marks != seen:
                    self._changed.set()  # event followers wake for the worker's commits too, not only ours
                if marks != seen or now >= next_pass:
                    await self.run_due_timers()
                    await submissions.reconcile_evaluations(self)
                    backstop_s = self.idle_ticks * self.tick_s
                    if now - last_reconcile >= backstop_s:
                        await self.reconcile_invoices()
                        last_reconcile = now
                    # Payout retries, holdback timers, refunds of closed bounties (coordinator/payouts.py).
                    await self._payouts("tick")
                    after = await self._change_marks()
                    busy = after != marks  # what this pass did may have made more work
                    seen = after
                    next_pass = min(now + (self.tick_s if busy else backstop_s), await self._next_due())
            except Exception:  # noqa: BLE001 - a bad row must not stop the clock; it is logged
                log.exception("coordinator tick failed")
                seen, next_pass = None, 0.0
            await asyncio.sleep(self.tick_s)

    async def _change_marks(self) -> tuple[int, int]:
        version = await self.store.scalar("PRAGMA data_version")
        return self.store.conn.total_changes, int(version or 0)

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
        await submissions.reconcile_evaluations(self)

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
        sources = (frm,) if isinstance(frm, str) else frm
        marks = ",".join("?" for _ in sources)
        changed = await txn.execute(
            f"UPDATE bounties SET status = ?, updated_at = ? WHERE id = ? AND status IN ({marks})",
            (to, time.time(), bounty_id, *sources))
        if changed:
            await txn.event("bounty.status", bounty_id, status=to, **payload)
        return bool(changed)

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

    async def reconcile_invoices(self) -> None:
        """Ask the node about funding and stake invoices we still wait on (missed updates)."""
        rows = await self.store.fetchall(
            "SELECT payment_hash FROM invoices WHERE kind IN ('funding', 'stake') AND status IN ('OPEN', 'ACCEPTED')")
        for row in rows:
            try:
                invoice = await self.backend.lookup_invoice(row["payment_hash"])
            except LightningError as exc:
                log.warning("cannot look up invoice %s: %s", row["payment_hash"][:12], exc)
                continue
            await self.apply_invoice_state(row["payment_hash"], invoice.state)

    async def cancel_bounty(self, bounty_id: str, reason: str = "cancelled by the operator") -> dict[str, Any]:
        """Cancel a bounty that has paid nothing out; the funding hold is cancelled (refunded)."""
        bounty = await self._bounty_row(bounty_id)
        if bounty["status"] == "CANCELED":
            return await self.get_bounty(bounty_id)
        paid = await self.store.scalar(
            "SELECT COUNT(*) FROM payments WHERE bounty_id = ? AND purpose IN ('payout', 'holdback')", (bounty_id,))
        if bounty["status"] not in CANCELABLE_BOUNTY or paid:
            raise Conflict(f"bounty {bounty_id} is {bounty['status']}{' and has paid out' if paid else ''}; "
                           "only a bounty that has paid nothing can be cancelled — close it instead",
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
            if await self._set_bounty_status(txn, bounty_id, "OPEN", "CLOSED", reason=reason):
                now = time.time()
                await txn.execute("UPDATE heldout_commitments SET revealed_at = ? WHERE bounty_id = ? "
                                  "AND revealed_at IS NULL", (now, bounty_id))
                await txn.event("bounty.salt_revealed", bounty_id)
                await txn.execute("UPDATE timers SET done_at = ? WHERE kind = 'bounty_deadline' AND subject_id = ?",
                                  (now, bounty_id))
        await self._payouts("on_bounty_closed", bounty_id)
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

    async def _payouts(self, name: str, *args: Any) -> Any:
        try:
            return await seams.call(name, self.store, self.backend, self.cfg, *args)
        except Exception:  # noqa: BLE001 - the payouts module retries on its own; never lose the verdict
            log.exception("payouts.%s(%s) failed; it will be retried at the next start", name, args)
            return None

    # -- reading ---------------------------------------------------------------------

    async def _bounty_row(self, bounty_id: str) -> dict[str, Any]:
        row = await self.store.fetchone("SELECT * FROM bounties WHERE id = ?", (bounty_id,))
        if row is None:
            raise NotFound(f"no bounty {bounty_id!r}; GET /api/v1/bounties lists them", code="unknown_bounty")
        return row

    async def _view(self, row: dict[str, Any]) -> dict[str, Any]:
        commitments = await self.store.fetchall(
            "SELECT * FROM heldout_commitments WHERE bounty_id = ? ORDER BY set_index", (row["id"],))
        left = await pool_left(self.store, row)
        rules = {"submissions_per_day": self.cfg.get("coordinator.submissions_per_day"),
                 "fee_percent": self.cfg.get("coordinator.fee_percent"),
                 "holdback_percent": self.cfg.get("coordinator.holdback_percent"),
                 "max_diff_bytes": self.cfg.get("coordinator.max_diff_bytes")}
        return bounty_view(row, commitments, pool_left_msat=max(0, left), rules=rules,
                           price_sats=dict(self.cfg.section("prices")),
                           best=disclosure.agent_best(json.loads(row["best_json"] or "null")))

    async def get_bounty(self, bounty_id: str) -> dict[str, Any]:
        return await self._view(await self._bounty_row(bounty_id))

    async def list_bounties(self, *, include_all: bool = False) -> list[dict[str, Any]]:
        """Bounties agents can see (OPEN, CLOSED, SETTLED); ``include_all`` adds drafts and cancelled ones."""
        where = "" if include_all else f"WHERE status IN {sql_list(LISTED_BOUNTY)}"
        rows = await self.store.fetchall(f"SELECT * FROM bounties {where} ORDER BY created_at DESC")
        return [await self._view(r) for r in rows]

    async def package(self, bounty_id: str) -> tuple[Path, str]:
        row = await self._bounty_row(bounty_id)
        return Path(row["package_path"]), row["package_sha256"]

    async def funding(self, bounty_id: str) -> dict[str, Any] | None:
        row = await self.store.fetchone(
            "SELECT bolt11, amount_msat, status, expires_at FROM invoices WHERE kind = 'funding' AND bounty_id = ?",
            (bounty_id,))
        if row is None:
            return None
        return {"invoice": row["bolt11"], "amount_sats": row["amount_msat"] // 1000, "status": row["status"],
                "expires_at": row["expires_at"]}

    async def ensure_sellable(self, bounty_id: str, capability: str) -> None:
        """Refuse to sell a token for a bounty that cannot use it (before any invoice is made)."""
        row = await self._bounty_row(bounty_id)
        if row["status"] != "OPEN" and not (capability == "download" and row["status"] in ("CLOSED", "SETTLED")):
            raise Conflict(f"bounty {bounty_id} is {row['status']}; it does not take {capability} requests",
                           code="bounty_not_open")

    async def leaderboard(self, bounty_id: str) -> list[dict[str, Any]]:
        await self._bounty_row(bounty_id)
        return await submissions.leaderboard(self, bounty_id)

    async def ledger(self, bounty_id: str | None = None, limit: int = 500) -> list[dict[str, Any]]:
        where, params = ("WHERE bounty_id = ?", (bounty_id,)) if bounty_id else ("", ())
        return await self.store.fetchall(
            f"SELECT * FROM ledger_entries {where} ORDER BY id DESC LIMIT ?", (*params, int(limit)))

    async def invoices(self, bounty_id: str | None = None, limit: int = 500) -> list[dict[str, Any]]:
        where, params = ("WHERE bounty_id = ?", (bounty_id,)) if bounty_id else ("", ())
        rows = await self.store.fetchall(
            f"SELECT payment_hash, kind, bolt11, amount_msat, is_hold, status, bounty_id, submission_id, "
            f"expires_at, created_at, updated_at FROM invoices {where} ORDER BY created_at DESC LIMIT ?",
            (*params, int(limit)))
        return rows

    async def payments(self, bounty_id: str | None = None, limit: int = 500) -> list[dict[str, Any]]:
        where, params = ("WHERE bounty_id = ?", (bounty_id,)) if bounty_id else ("", ())
        return await self.store.fetchall(
            f"SELECT idempotency_key, bounty_id, submission_id, purpose, destination, amount_msat, fee_msat, "
            f"status, attempts, last_error, created_at, updated_at FROM payments {where} "
            f"ORDER BY created_at DESC LIMIT ?", (*params, int(limit)))

    async def ledger_page(self, bounty_id: str | None = None, limit: int = 500) -> dict[str, list[dict[str, Any]]]:
        """Ledger entries, invoices and payments together: what the ledger pane shows."""
        return {"entries": await self.ledger(bounty_id, limit), "invoices": await self.invoices(bounty_id, limit),
                "payments": await self.payments(bounty_id, limit)}

    # -- submissions (the logic lives in coordinator/submissions.py) -------------------

    async def submit(self, bounty_id: str, token_id: str, diff: str, *, claimed_score: float | None = None,
                     payout_destination: str | None = None) -> dict[str, Any]:
        return await submissions.submit(self, bounty_id, token_id, diff, claimed_score=claimed_score,
                                        payout_destination=payout_destination)

    async def submission(self, submission_id: str) -> dict[str, Any]:
        """A submission as its agent may see it (coordinator/disclosure.py)."""
        return await submissions.status(self, submission_id)

    async def submission_detail(self, submission_id: str) -> dict[str, Any]:
        """A submission with its whole verdict and evaluation detail: operator and sponsor only."""
        return await submissions.detail(self, submission_id)

    async def list_submissions(self, bounty_id: str | None = None, limit: int = 500) -> list[dict[str, Any]]:
        return await submissions.list_all(self, bounty_id, limit)

    async def claim(self, submission_id: str, token_id: str, bolt11: str) -> dict[str, Any]:
        return await submissions.claim(self, submission_id, token_id, bolt11)

    # -- events ----------------------------------------------------------------------

    async def events_after(self, after_id: int = 0, limit: int = 200) -> list[dict[str, Any]]:
        rows = await self.store.fetchall("SELECT * FROM events WHERE id > ? ORDER BY id LIMIT ?",
                                         (int(after_id), int(limit)))
        return [event_view(r) for r in rows]

    async def last_event_id(self) -> int:
        return int(await self.store.scalar("SELECT COALESCE(MAX(id), 0) FROM events"))

    async def follow_events(self, after_id: int = 0, poll_s: float = 1.0,
                            heartbeat_s: float | None = None) -> AsyncIterator[dict[str, Any] | None]:
        """Every event after ``after_id``, then new ones as they are written (by any process).

        With ``heartbeat_s``, yields None after that long without events (the SSE
        handler turns it into a comment so proxies keep the stream open)."""
        last = after_id
        idle_since = time.monotonic()
        while True:
            batch = await self.events_after(last)
            for event in batch:
                last = event["id"]
                yield event
            if batch:
                idle_since = time.monotonic()
            elif heartbeat_s is not None and time.monotonic() - idle_since >= heartbeat_s:
                idle_since = time.monotonic()
                yield None
            if len(batch) == 200:
                continue
            self._changed.clear()
            try:
                # Woken at once by our own commits; other processes' rows show up by polling.
                await asyncio.wait_for(self._changed.wait(), timeout=poll_s)
            except asyncio.TimeoutError:
                pass


_LOGGED_FIELDS = ("status", "reason", "name", "pool_sats", "improvement", "invoice_kind", "amount_sats")


def _log_events(events: list[dict[str, Any]]) -> None:
    """One readable line per committed state change (what `l402tui serve` shows)."""
    for e in events:
        fields = " ".join(f"{k}={e['payload'][k]}" for k in _LOGGED_FIELDS if e["payload"].get(k) is not None)
        log.info("%s %s %s", e["kind"], e["subject_id"] or "", fields)
