"""What unpaid L402 challenges may leave behind: a bounded number of rows, for a bounded time.

Every 402 answer stores an offer (an ``invoices`` row of kind ``l402`` and the token's
``l402_root_keys`` row) and asks the Lightning node for an invoice.  Anyone can ask, from
any number of addresses, so:

- at most ``max_unpaid`` offers are kept unpaid at once (``l402.max_unpaid_challenges``);
  past that a client is answered 503 with a Retry-After until older ones expire;
- an offer whose invoice expired is pruned (store rows, then the node's invoice where the
  backend keeps one for us), in bounded batches, when the gate is next asked for one;
- issuing an offer writes no event: the payment writes ``invoice.status`` (SETTLED).

An offer is pruned only when its invoice can no longer be paid: the store already has it
EXPIRED or CANCELED (final), or the node says so (asked for every row the store still has
OPEN, since an update may have been missed); an invoice the node reports paid is marked
so and kept.  Paid tokens are never touched, and a client who pays before the expiry is
honoured, because the expiry is when the node stops taking the payment.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from contextlib import asynccontextmanager
from typing import AsyncIterator

from l402tui.lightning.backend import InvoiceNotFound, InvoiceState, LightningBackend, LightningError
from l402tui.store import Store

log = logging.getLogger("l402tui.l402")

DEFAULT_MAX_UNPAID = 10_000
UNPAID = ("OPEN", "EXPIRED", "CANCELED")
_UNPAID_SQL = "('OPEN', 'EXPIRED', 'CANCELED')"
_PAID = (InvoiceState.ACCEPTED, InvoiceState.SETTLED)
_GONE = (InvoiceState.EXPIRED, InvoiceState.CANCELED)


class ChallengesFull(Exception):
    """Too many unpaid challenges are outstanding; ``retry_after_s`` says when one frees."""

    def __init__(self, retry_after_s: int, outstanding: int):
        super().__init__(f"{outstanding} unpaid payment challenges are outstanding")
        self.retry_after_s = retry_after_s
        self.outstanding = outstanding


class UnpaidChallenges:
    """The bound on unpaid L402 offers, and their pruning.

    ``grace_s``: how long after its expiry an invoice is left alone (clock skew between
    this process and the node).  ``batch``: rows looked at per pruning pass.  ``every_s``:
    how often a pass runs while offers are being issued (and, when the bound is reached,
    at most once a second)."""

    def __init__(self, store: Store, backend: LightningBackend, *, max_unpaid: int = DEFAULT_MAX_UNPAID,
                 grace_s: float = 60.0, batch: int = 200, every_s: float = 30.0):
        if max_unpaid <= 0:
            raise ValueError(f"l402.max_unpaid_challenges must be > 0, got {max_unpaid}")
        self.store = store
        self.backend = backend
        self.max_unpaid = max_unpaid
        self.grace_s = grace_s
        self.batch = batch
        self.every_s = every_s
        self._in_flight = 0  # admitted, invoice being created, rows not yet committed
        self._last_prune = float("-inf")
        self._lock = asyncio.Lock()
        self._pass: asyncio.Task | None = None  # the background pass, while one runs

    async def outstanding(self) -> int:
        """Unpaid offers the store holds (expired ones too, until pruned)."""
        return int(await self.store.scalar(
            f"SELECT COUNT(*) FROM invoices WHERE kind = 'l402' AND status IN {_UNPAID_SQL}") or 0)

    @asynccontextmanager
    async def admit(self) -> AsyncIterator[None]:
        """Hold a place for one new offer while it is issued; raises ChallengesFull."""
        now = time.time()
        if now - self._last_prune >= self.every_s:
            self._prune_behind(now)  # the routine pass never holds up the request that ran into it
        held = await self.outstanding() + self._in_flight
        if held >= self.max_unpaid and now - self._last_prune >= 1.0:
            await self.prune(now)
            held = await self.outstanding() + self._in_flight
        if held >= self.max_unpaid:
            raise ChallengesFull(await self._retry_after(now), held)
        self._in_flight += 1
        try:
            yield
        finally:
            self._in_flight -= 1

    def _prune_behind(self, now: float) -> None:
        """Start a pass in the background (one at a time): it may ask the node about up to
        ``batch`` invoices, which no client should wait for."""
        if self._pass is not None and not self._pass.done():
            return
        self._last_prune = now
        self._pass = asyncio.get_running_loop().create_task(self._quiet_prune(now))

    async def _quiet_prune(self, now: float) -> None:
        try:
            await self.prune(now)
        except Exception:  # the store closing under it, say: the next pass tries again
            log.exception("a background pass over unpaid L402 challenges failed")

    async def close(self) -> None:
        """Stop a background pass (before the store closes)."""
        if self._pass is not None and not self._pass.done():
            self._pass.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pass

    async def _retry_after(self, now: float) -> int:
        first = await self.store.scalar(
            f"SELECT MIN(expires_at) FROM invoices WHERE kind = 'l402' AND status IN {_UNPAID_SQL}")
        if first is None:
            return 1
        wait = float(first) + self.grace_s - now
        return max(1, math.ceil(wait)) if wait > 0 else max(1, math.ceil(self.every_s))

    async def prune(self, now: float | None = None) -> int:
        """One pass: drop up to ``batch`` offers whose invoice can no longer be paid; returns
        how many.  Never raises for the node being away (those rows wait for the next pass)."""
        now = time.time() if now is None else now
        async with self._lock:
            self._last_prune = now
            rows = await self.store.fetchall(
                f"SELECT payment_hash, status FROM invoices WHERE kind = 'l402' AND status IN {_UNPAID_SQL} "
                "AND expires_at <= ? ORDER BY expires_at LIMIT ?", (now - self.grace_s, self.batch))
            doomed, paid = await self._judge(rows)
            pruned: list[str] = []
            if doomed or paid:
                async with self.store.transaction() as txn:
                    for payment_hash, state in paid:
                        row = await txn.fetchone("SELECT * FROM invoices WHERE payment_hash = ?", (payment_hash,))
                        if row is not None and await txn.execute(
                                "UPDATE invoices SET status = ?, updated_at = ? WHERE payment_hash = ? AND status = ?",
                                (state.value, time.time(), payment_hash, row["status"])):
                            await txn.event("invoice.status", payment_hash, invoice_kind="l402", status=state.value,
                                            bounty_id=row["bounty_id"], submission_id=row["submission_id"],
                                            amount_msat=row["amount_msat"])
                    for payment_hash in doomed:
                        # The status guard: an update that marked it paid meanwhile keeps it.
                        if await txn.execute(f"DELETE FROM invoices WHERE payment_hash = ? AND kind = 'l402' "
                                             f"AND status IN {_UNPAID_SQL}", (payment_hash,)):
                            await txn.execute("DELETE FROM l402_root_keys WHERE payment_hash = ?", (payment_hash,))
                            pruned.append(payment_hash)
        if pruned:
            try:
                forgotten = await self.backend.forget_expired_invoices(pruned)
            except LightningError as exc:
                forgotten = 0
                log.warning("the Lightning node kept %d expired L402 invoices (%s)", len(pruned), exc)
            log.info("pruned %d expired unpaid L402 challenges (%d invoices forgotten by the node)",
                     len(pruned), forgotten)
        return len(pruned)

    async def _judge(self, rows: list[dict]) -> tuple[list[str], list[tuple[str, InvoiceState]]]:
        """(offers that can be dropped, offers the node says were paid)."""
        doomed: list[str] = []
        paid: list[tuple[str, InvoiceState]] = []
        for row in rows:
            if row["status"] != "OPEN":
                doomed.append(row["payment_hash"])  # EXPIRED / CANCELED: final, nobody can pay it now
                continue
            try:
                invoice = await self.backend.lookup_invoice(row["payment_hash"])
            except InvoiceNotFound:
                doomed.append(row["payment_hash"])  # the node has no such invoice: nothing can pay it
                continue
            except LightningError as exc:
                log.info("not pruning unpaid L402 challenges now: the node cannot be asked (%s)", exc)
                break
            if invoice.state in _PAID:
                paid.append((row["payment_hash"], invoice.state))
            elif invoice.state in _GONE:
                doomed.append(row["payment_hash"])
            # OPEN on the node past our clock's expiry: the node's clock decides; next pass.
        return doomed, paid
