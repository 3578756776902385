"""Outgoing payments that never go out twice: rows first, then the send, then the outcome.

One ``payments`` row per amount owed, keyed by an idempotency key
(``payout:<submission>``, ``holdback:<submission>``, ``refund:<bounty>:<n>``,
``stake_refund:<submission>``).
Its status says what may happen next:

``AWAITING_CLAIM``  owed; waits for the payee's BOLT11 invoice for exactly that amount
``QUEUED``          owed to a node id; a keysend will be tried
``PENDING``         an attempt was recorded *before* it was sent; only a lookup of its
                    payment hash on the node may decide what happened to it
``FAILED``          the last attempt failed for sure; retried at ``next_attempt_at``
``COMPLETE``        paid; the ledger moved it from ``owed:`` to ``paid:`` / ``refund:``
``UNKNOWN``         sent without a known hash and the node cannot tell; an operator decides

Sends run one at a time per store (:func:`payout_lock`), so a PENDING row seen while
holding the lock belongs to an earlier process or is still in flight at the node:
it is reconciled with ``lookup_payment`` before anything is retried.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import json
import logging
import os
import weakref
from typing import Any

from l402tui.config import Config
from l402tui.coordinator import ledger, lifecycle
from l402tui.coordinator.errors import Conflict
from l402tui.domain import CLAIMABLE, SENDABLE, SubmissionStatus  # noqa: F401 - payouts reads CLAIMABLE here
from l402tui.lightning.backend import (BackendUnavailable, FeeLimitExceeded, InsufficientBalance, InvalidRequest,
                                       InvoiceExpired, InvoiceNotFound, LightningBackend, LightningError,
                                       NoRoute, Payment, PaymentRejected, PaymentState)
from l402tui.store.db import Store, Txn, now

log = logging.getLogger("l402tui.payouts")

# Errors after which nothing was sent, for sure; anything else is looked up first.
_DEFINITE = (NoRoute, InsufficientBalance, FeeLimitExceeded, InvoiceExpired, InvalidRequest, PaymentRejected)

_locks: "weakref.WeakKeyDictionary[Store, asyncio.Lock]" = weakref.WeakKeyDictionary()


def payout_lock(store: Store) -> asyncio.Lock:
    """The one lock around every send and payout transition of this process."""
    lock = _locks.get(store)
    if lock is None:
        lock = _locks[store] = asyncio.Lock()
    return lock


class PayoutsHalted(Conflict):
    """The invariant failed once; nothing is paid until an operator resumes payouts."""

    code = "payouts_halted"


def is_node_id(destination: str | None) -> bool:
    if not destination or len(destination) != 66 or destination[:2] not in ("02", "03"):
        return False
    try:
        bytes.fromhex(destination)
    except ValueError:
        return False
    return True


def _keysend_takes_preimage(lightning: LightningBackend) -> bool:
    try:
        return "preimage" in inspect.signature(lightning.keysend).parameters
    except (TypeError, ValueError):
        return False


def max_fee_msat(cfg: Config, amount_msat: int) -> int:
    return int(cfg.get("coordinator.payout_max_fee_base_msat")
               + amount_msat * cfg.get("coordinator.payout_max_fee_ppm") // 1_000_000)


def backoff_s(cfg: Config, attempts: int) -> float:
    base = float(cfg.get("coordinator.payout_retry_base_s"))
    return min(base * (2 ** max(0, attempts - 1)), float(cfg.get("coordinator.payout_retry_max_s")))


async def add(txn: Txn, *, key: str, bounty_id: str, submission_id: str | None, purpose: str,
              amount_msat: int, destination: str | None, keysend: bool) -> None:
    """Record an amount owed (inside the transaction that allocated it); idempotent by key."""
    if amount_msat <= 0:
        return
    push = keysend and is_node_id(destination)
    t = now()
    await txn.insert("payments", {
        "idempotency_key": key, "bounty_id": bounty_id, "submission_id": submission_id, "purpose": purpose,
        "destination": destination if push else None, "amount_msat": amount_msat, "fee_msat": 0,
        "status": "QUEUED" if push else "AWAITING_CLAIM", "attempts": 0, "next_attempt_at": t,
        "created_at": t, "updated_at": t,
    }, or_ignore=True)


def _owed_account(row: dict[str, Any]) -> tuple[str, str]:
    if row["purpose"] == "refund":
        return ledger.owed_sponsor(row["bounty_id"]), ledger.refund(row["bounty_id"])
    if row["purpose"] == "stake_refund":
        return ledger.stake_owed(row["submission_id"]), ledger.unstaked(row["submission_id"])
    return ledger.owed(row["submission_id"]), ledger.paid(row["submission_id"])


async def complete(store: Store, row: dict[str, Any], payment: Payment) -> None:
    async with ledger.transition(store, row["bounty_id"]) as txn:
        changed = await txn.execute(
            "UPDATE payments SET status = 'COMPLETE', fee_msat = ?, preimage = COALESCE(?, preimage), "
            "payment_hash = COALESCE(payment_hash, NULLIF(?, '')), last_error = NULL, updated_at = ? "
            "WHERE idempotency_key = ? AND status != 'COMPLETE'",
            (payment.fee_msat, payment.preimage, payment.payment_hash, now(), row["idempotency_key"]))
        if not changed:
            return
        owed, sink = _owed_account(row)
        transfers = [ledger.Transfer(owed, sink, row["amount_msat"], row["submission_id"])]
        if payment.fee_msat:
            transfers.append(ledger.Transfer(ledger.OPERATOR, ledger.ROUTING_FEES, payment.fee_msat,
                                             row["submission_id"]))
        await ledger.post(txn, f"sent:{row['idempotency_key']}", transfers, bounty_id=row["bounty_id"],
                          memo=f"{row['purpose']} sent ({payment.payment_hash[:16] or 'hash unknown'})")
        if row["submission_id"] and row["purpose"] in ("payout", "holdback"):
            await _advance_submission(txn, row["submission_id"])
        await txn.event("payment.complete", row["idempotency_key"], bounty_id=row["bounty_id"],
                        submission_id=row["submission_id"], purpose=row["purpose"],
                        amount_msat=row["amount_msat"], fee_msat=payment.fee_msat)


async def _advance_submission(txn: Txn, submission_id: str) -> None:
    """ACCEPTED -> PAID_PARTIAL once the 80 % is paid; -> PAID_FULL once nothing is held back either."""
    rows = await txn.fetchall("SELECT purpose, status FROM payments WHERE submission_id = ?", (submission_id,))
    by = {r["purpose"]: r["status"] for r in rows}
    if by.get("payout") != "COMPLETE":
        return
    held = await ledger.balance(txn, ledger.holdback(await _bounty_of(txn, submission_id)),
                                submission_id=submission_id)
    released_and_paid = by.get("holdback") == "COMPLETE"
    nothing_held = held == 0 and "holdback" not in by and not await ledger.posted(
        txn, f"holdback_forfeit:{submission_id}")
    S = SubmissionStatus
    target = S.PAID_FULL if released_and_paid or nothing_held else S.PAID_PARTIAL
    sources = (S.ACCEPTED, S.PAID_PARTIAL) if target is S.PAID_FULL else (S.ACCEPTED,)
    await lifecycle.move_submission(txn, submission_id, sources, target)


async def _bounty_of(txn: Txn, submission_id: str) -> str:
    row = await txn.fetchone("SELECT bounty_id FROM submissions WHERE id = ?", (submission_id,))
    return row["bounty_id"]


async def _fail(store: Store, cfg: Config, row: dict[str, Any], error: str, *, attempt_counted: bool = True,
                give_up: bool = False) -> None:
    """The attempt failed for sure: schedule a retry with backoff, or hand the amount back to /claim."""
    attempts = row["attempts"] + (0 if attempt_counted else 1)
    out_of_tries = give_up or attempts >= int(cfg.get("coordinator.payout_max_attempts"))
    async with store.transaction() as txn:
        if out_of_tries:
            # Nothing is lost: the amount stays owed and the payee can claim it with an invoice.
            await txn.execute("UPDATE payments SET status = 'AWAITING_CLAIM', bolt11 = NULL, last_error = ?, "
                              "updated_at = ? WHERE idempotency_key = ? AND status != 'COMPLETE'",
                              (error, now(), row["idempotency_key"]))
            await txn.event("payment.awaiting_claim", row["idempotency_key"], bounty_id=row["bounty_id"],
                            submission_id=row["submission_id"], error=error, attempts=attempts,
                            action="the payee can claim this amount with a BOLT11 invoice for exactly it")
        else:
            retry_at = now() + backoff_s(cfg, attempts)
            await txn.execute("UPDATE payments SET status = 'FAILED', last_error = ?, next_attempt_at = ?, "
                              "updated_at = ? WHERE idempotency_key = ? AND status != 'COMPLETE'",
                              (error, retry_at, now(), row["idempotency_key"]))
            await txn.event("payment.failed", row["idempotency_key"], bounty_id=row["bounty_id"],
                            submission_id=row["submission_id"], error=error, attempts=attempts,
                            retry_at=retry_at)
    log.warning("payment %s failed (attempt %d): %s", row["idempotency_key"], attempts, error)


async def _apply(store: Store, cfg: Config, row: dict[str, Any], payment: Payment) -> str:
    if payment.state is PaymentState.COMPLETE:
        await complete(store, row, payment)
    elif payment.state is PaymentState.FAILED:
        await _fail(store, cfg, row, payment.error or "the payment failed")
    return payment.state.value


async def _reload(store: Store, key: str) -> dict[str, Any]:
    row = await store.fetchone("SELECT * FROM payments WHERE idempotency_key = ?", (key,))
    assert row is not None
    return row


async def attempt(store: Store, lightning: LightningBackend, cfg: Config, key: str) -> dict[str, Any]:
    """One send of a QUEUED/FAILED row (keysend, or pay of its claimed invoice).  Hold the lock."""
    reason = await ledger.halted_reason(store)
    if reason:
        raise PayoutsHalted(f"payouts are halted ({reason}); nothing was sent")
    row = await _reload(store, key)
    if row["status"] not in SENDABLE:
        return row  # PENDING is decided by a lookup only; COMPLETE is done
    amount = row["amount_msat"]
    preimage = None
    if row["bolt11"]:
        payment_hash = row["payment_hash"]
    elif _keysend_takes_preimage(lightning):
        preimage = os.urandom(32).hex()
        payment_hash = hashlib.sha256(bytes.fromhex(preimage)).hexdigest()
    else:
        payment_hash = None  # learnt from the node's answer; see reconcile() for a crash in between
    async with store.transaction() as txn:
        # The attempt is on record before a single msat moves.
        await txn.execute("UPDATE payments SET status = 'PENDING', attempts = attempts + 1, payment_hash = ?, "
                          "preimage = ?, updated_at = ? WHERE idempotency_key = ?",
                          (payment_hash, preimage, now(), key))
    row = await _reload(store, key)
    try:
        if row["bolt11"]:
            payment = await lightning.pay(row["bolt11"], max_fee_msat=max_fee_msat(cfg, amount),
                                          timeout_s=float(cfg.get("coordinator.payout_send_timeout_s")))
        else:
            extra = {"preimage": preimage} if preimage else {}
            payment = await lightning.keysend(row["destination"], amount, max_fee_msat=max_fee_msat(cfg, amount),
                                              **extra)
    except LightningError as exc:
        known = getattr(exc, "payment", None)
        if payment_hash is None and isinstance(known, Payment):
            payment_hash = known.payment_hash
            await _record_hash(store, key, payment_hash)
        if isinstance(exc, _DEFINITE) or (isinstance(known, Payment) and known.state is PaymentState.FAILED):
            await _fail(store, cfg, row, f"{type(exc).__name__}: {exc}",
                        give_up=isinstance(exc, InvoiceExpired) and bool(row["bolt11"]))
        else:
            await reconcile(store, lightning, cfg, await _reload(store, key))
        return await _reload(store, key)
    if payment_hash is None:
        await _record_hash(store, key, payment.payment_hash)
    await _apply(store, cfg, await _reload(store, key), payment)
    return await _reload(store, key)


async def _record_hash(store: Store, key: str, payment_hash: str) -> None:
    async with store.transaction() as txn:
        await txn.execute("UPDATE payments SET payment_hash = ?, updated_at = ? WHERE idempotency_key = ?",
                          (payment_hash, now(), key))


async def reconcile(store: Store, lightning: LightningBackend, cfg: Config, row: dict[str, Any]) -> str:
    """Decide a PENDING row from what the node knows; never sends.  Hold the lock."""
    if row["status"] != "PENDING":
        return row["status"]
    if row["payment_hash"] is None:
        return await _reconcile_without_hash(store, lightning, cfg, row)
    try:
        payment = await lightning.lookup_payment(row["payment_hash"])
    except InvoiceNotFound:
        # The node never saw it: the crash (or error) came before the send. Safe to send now.
        await _fail(store, cfg, row, "the previous attempt never reached the node", attempt_counted=True)
        async with store.transaction() as txn:
            await txn.execute("UPDATE payments SET next_attempt_at = ? WHERE idempotency_key = ? "
                              "AND status = 'FAILED'", (now(), row["idempotency_key"]))
        return "FAILED"
    except (BackendUnavailable, LightningError) as exc:
        log.warning("cannot look up payment %s yet: %s", row["idempotency_key"], exc)
        return "PENDING"
    return await _apply(store, cfg, row, payment)


async def _reconcile_without_hash(store: Store, lightning: LightningBackend, cfg: Config,
                                  row: dict[str, Any]) -> str:
    """A keysend whose hash was never recorded (the backend picks keysend preimages itself)."""
    list_payments = getattr(lightning, "list_payments", None)
    if list_payments is None:
        async with store.transaction() as txn:
            await txn.execute("UPDATE payments SET status = 'UNKNOWN', last_error = ?, updated_at = ? "
                              "WHERE idempotency_key = ? AND status = 'PENDING'",
                              ("a keysend may have been sent before a crash and this node cannot list "
                               "payments; check the node and mark it COMPLETE or FAILED", now(),
                               row["idempotency_key"]))
            await txn.event("payment.unknown", row["idempotency_key"], bounty_id=row["bounty_id"])
        return "UNKNOWN"
    known = {r["payment_hash"] for r in await store.fetchall(
        "SELECT payment_hash FROM payments WHERE payment_hash IS NOT NULL")}
    status = await lightning.status()
    # Backends name the destination by node id or by alias (the sim uses node names), so an
    # unrecorded payment of exactly this amount that no other row claims is the one.
    candidates = [p for p in await list_payments()
                  if p.payment_hash not in known and p.amount_msat == row["amount_msat"]
                  and p.state is not PaymentState.FAILED and p.destination != status.node_id
                  and (not is_node_id(p.destination) or p.destination == row["destination"])]
    if not candidates:
        await _fail(store, cfg, row, "the previous keysend never reached the node")
        return "FAILED"
    payment = candidates[-1]
    await _record_hash(store, row["idempotency_key"], payment.payment_hash)
    return await _apply(store, cfg, await _reload(store, row["idempotency_key"]), payment)


async def process(store: Store, lightning: LightningBackend, cfg: Config, *, at: float | None = None) -> int:
    """Reconcile every PENDING row, then send every due one.  Hold the lock.  Returns sends tried."""
    for row in await store.fetchall("SELECT * FROM payments WHERE status = 'PENDING' ORDER BY created_at"):
        await reconcile(store, lightning, cfg, row)
    at = now() if at is None else at
    due = await store.fetchall(
        "SELECT idempotency_key FROM payments WHERE status IN ('QUEUED', 'FAILED') AND next_attempt_at <= ? "
        "ORDER BY created_at", (at,))
    for row in due:
        await attempt(store, lightning, cfg, row["idempotency_key"])
    return len(due)


def row_view(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in ("idempotency_key", "purpose", "amount_msat", "fee_msat", "status", "attempts",
                                "last_error", "payment_hash", "next_attempt_at")} | {
        "amount_sats": row["amount_msat"] / 1000}


def dumps(x: Any) -> str:
    return json.dumps(x, sort_keys=True)
