"""What the coordinator service answers without changing anything: bounty views, the
ledger pane's rows, submissions as each party may see them, and the event log."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, AsyncIterator

from l402tui.coordinator import disclosure, lifecycle, submissions
from l402tui.coordinator.event_tail import EventTail
from l402tui.coordinator.payout_funding import pool_left
from l402tui.coordinator.views import bounty_view, event_view
from l402tui.domain import LISTED_BOUNTY, sql_list

if TYPE_CHECKING:
    from l402tui.config import Config
    from l402tui.store import Store

EVENT_PAGE = 200


class CoordinatorReads:
    """The read side of :class:`l402tui.coordinator.service.Coordinator`."""

    cfg: "Config"
    store: "Store"
    _changed: asyncio.Event  # set by every commit on the store (Coordinator._committed)
    _tail: EventTail | None = None  # the newest events, shared by every follower
    _tail_pump: asyncio.Task | None = None

    async def _bounty_row(self, bounty_id: str) -> dict[str, Any]:
        return await lifecycle.bounty_row(self.store, bounty_id)

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

    async def leaderboard(self, bounty_id: str) -> list[dict[str, Any]]:
        await self._bounty_row(bounty_id)
        return await submissions.leaderboard(self.store, bounty_id)

    async def ledger(self, bounty_id: str | None = None, limit: int = 500) -> list[dict[str, Any]]:
        where, params = ("WHERE bounty_id = ?", (bounty_id,)) if bounty_id else ("", ())
        return await self.store.fetchall(
            f"SELECT * FROM ledger_entries {where} ORDER BY id DESC LIMIT ?", (*params, int(limit)))

    async def invoices(self, bounty_id: str | None = None, limit: int = 500) -> list[dict[str, Any]]:
        where, params = ("WHERE bounty_id = ?", (bounty_id,)) if bounty_id else ("", ())
        return await self.store.fetchall(
            f"SELECT payment_hash, kind, bolt11, amount_msat, is_hold, status, bounty_id, submission_id, "
            f"expires_at, created_at, updated_at FROM invoices {where} ORDER BY created_at DESC LIMIT ?",
            (*params, int(limit)))

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

    # -- submissions -------------------------------------------------------------------

    async def submission(self, submission_id: str) -> dict[str, Any]:
        """A submission as its agent may see it (coordinator/disclosure.py)."""
        return await submissions.status(self.store, submission_id)

    async def submission_detail(self, submission_id: str) -> dict[str, Any]:
        """A submission with its whole verdict and evaluation detail: operator and sponsor only."""
        return await submissions.detail(self.store, submission_id)

    async def list_submissions(self, bounty_id: str | None = None, limit: int = 500) -> list[dict[str, Any]]:
        return await submissions.list_all(self.store, bounty_id, limit)

    # -- events ------------------------------------------------------------------------

    async def events_after(self, after_id: int = 0, limit: int = EVENT_PAGE) -> list[dict[str, Any]]:
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
        async for batch in self.follow_event_pages(after_id, poll_s, heartbeat_s):
            if batch is None:
                yield None
            for event in batch or ():
                yield event

    async def follow_event_pages(self, after_id: int = 0, poll_s: float = 1.0,
                                 heartbeat_s: float | None = None) -> AsyncIterator[list[dict[str, Any]] | None]:
        """:meth:`follow_events` a page at a time (a replay is a few writes, not one per event)."""
        tail = self._event_tail()
        last = after_id
        idle_since = time.monotonic()
        while True:
            newer = tail.waiter()  # taken before reading: nothing read after it can be missed
            batch = await tail.after(last, EVENT_PAGE)
            if batch:
                last = batch[-1]["id"]
                yield batch
                idle_since = time.monotonic()
            elif heartbeat_s is not None and time.monotonic() - idle_since >= heartbeat_s:
                idle_since = time.monotonic()
                yield None
            if len(batch) == EVENT_PAGE:
                continue
            try:
                # Woken at once when the tail grows (any commit through this store, and other
                # processes' commits seen by the tick); a read every poll_s backs that up, one
                # read for all followers.
                await asyncio.wait_for(newer.wait(), timeout=poll_s)
            except asyncio.TimeoutError:
                await tail.refresh()

    def _event_tail(self) -> EventTail:
        """The shared tail of the event log, and the task that refreshes it on every change."""
        if self._tail is None:
            self._tail = EventTail(self.events_after, self.last_event_id, page=EVENT_PAGE)
        if self._tail_pump is None or self._tail_pump.done():
            self._tail_pump = asyncio.get_running_loop().create_task(self._pump_tail(self._tail),
                                                                     name="coordinator-event-tail")
        return self._tail

    async def _pump_tail(self, tail: EventTail) -> None:
        while True:
            await self._changed.wait()
            self._changed.clear()  # a commit during the read sets it again: read again
            await tail.refresh()
