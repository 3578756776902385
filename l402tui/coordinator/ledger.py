"""The double-entry ledger: every msat that enters, moves or leaves is two entries.

Accounts are buckets; a transfer of X from A to B writes ``(A, -X)`` and ``(B, +X)``,
so every transaction sums to zero and so do the books.  External parties are
*source* accounts whose balance goes negative by what they put in:

==============================  ====================================================
``sponsor_funding:<bounty>``    source: what the sponsor put in (hold or self-funded)
``staker:<submission>``         source: the agent's stake
``lightning:coordinator``       source: the operator's own sats (routing fees)
``pool:<bounty>``               unallocated pool
``holdback:<bounty>``           the 20 % reservations (entries carry the submission)
``owed:<submission>``           allocated to an agent, not yet paid
``owed:sponsor:<bounty>``       a refund allocated to the sponsor, not yet paid
``stake:<submission>``          a stake held in a hold invoice
``stake_owed:<submission>``     the part of a settled stake owed back to the agent
``paid:<submission>``           sink: sent to the agent
``refund:<bounty>``             sink: returned to the sponsor (cancel or payment)
``unstaked:<submission>``       sink: stake returned to the agent (hold cancelled or paid back)
``fees:coordinator``            sink: the coordinator's fee (entries carry the bounty)
``routing_fees:coordinator``    sink: Lightning routing fees the operator paid
==============================  ====================================================

Stakes are not bounty money: only the part a stake *keeps* (``stake_forfeit:`` when the
sponsor confirms gaming, ``stake_keep:`` for a rejected submission) joins the pool and
counts as funded.

Transaction ids are deterministic (``payout:<submission>``, ``fund:<bounty>``...), so
posting is idempotent: a transition replayed after a crash posts nothing twice.
Entries are written with :class:`~l402tui.store.db.Txn`, in the same SQLite
transaction as the state change they record.
"""

from __future__ import annotations

import json
import logging
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, AsyncIterator

from l402tui.store.db import Store, Txn, now

log = logging.getLogger("l402tui.payouts")

FEES = "fees:coordinator"
ROUTING_FEES = "routing_fees:coordinator"
OPERATOR = "lightning:coordinator"
HALTED_EVENT = "payouts_halted"
RESUMED_EVENT = "payouts_resumed"


def pool(bounty_id: str) -> str:
    return f"pool:{bounty_id}"


def holdback(bounty_id: str) -> str:
    return f"holdback:{bounty_id}"


def sponsor_funding(bounty_id: str) -> str:
    return f"sponsor_funding:{bounty_id}"


def refund(bounty_id: str) -> str:
    return f"refund:{bounty_id}"


def owed_sponsor(bounty_id: str) -> str:
    return f"owed:sponsor:{bounty_id}"


def owed(submission_id: str) -> str:
    return f"owed:{submission_id}"


def paid(submission_id: str) -> str:
    return f"paid:{submission_id}"


def stake(submission_id: str) -> str:
    return f"stake:{submission_id}"


def staker(submission_id: str) -> str:
    return f"staker:{submission_id}"


def unstaked(submission_id: str) -> str:
    return f"unstaked:{submission_id}"


def stake_owed(submission_id: str) -> str:
    return f"stake_owed:{submission_id}"


class LedgerError(ValueError):
    """A transaction that cannot be posted (does not balance, bad amount)."""


class InvariantBroken(RuntimeError):
    """The books no longer add up; payouts halt until an operator looks."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


@dataclass(frozen=True)
class Transfer:
    source: str
    destination: str
    amount_msat: int
    submission_id: str | None = None


async def post(txn: Txn, txn_id: str, transfers: list[Transfer], *, bounty_id: str | None,
               memo: str = "") -> bool:
    """Post one transaction made of transfers; False if ``txn_id`` was already posted."""
    if await txn.fetchone("SELECT 1 FROM ledger_entries WHERE txn_id = ? LIMIT 1", (txn_id,)):
        return False
    entries: list[tuple[str, int, str | None]] = []
    for t in transfers:
        if not isinstance(t.amount_msat, int) or isinstance(t.amount_msat, bool):
            raise LedgerError(f"{txn_id}: amount must be whole msat (int), got {t.amount_msat!r}")
        if t.amount_msat < 0:
            raise LedgerError(f"{txn_id}: transfer {t.source} -> {t.destination} of {t.amount_msat} msat "
                              "is negative; swap source and destination instead")
        if t.amount_msat == 0:
            continue  # a zero transfer records nothing (e.g. a 0 % holdback)
        if t.source == t.destination:
            raise LedgerError(f"{txn_id}: transfer from {t.source} to itself")
        entries.append((t.source, -t.amount_msat, t.submission_id))
        entries.append((t.destination, t.amount_msat, t.submission_id))
    if sum(e[1] for e in entries) != 0:  # cannot happen with transfers; kept as the rule itself
        raise LedgerError(f"{txn_id}: entries do not sum to zero")
    created = now()
    for account, amount, submission_id in entries:
        await txn.insert("ledger_entries", {
            "txn_id": txn_id, "account": account, "amount_msat": amount, "bounty_id": bounty_id,
            "submission_id": submission_id, "memo": memo, "created_at": created,
        })
    return True


async def posted(conn: Store | Txn, txn_id: str) -> bool:
    return await conn.fetchone("SELECT 1 FROM ledger_entries WHERE txn_id = ? LIMIT 1", (txn_id,)) is not None


async def balance(conn: Store | Txn, account: str, *, submission_id: str | None = None) -> int:
    """Balance of ``account`` (optionally only the entries of one submission)."""
    sql = "SELECT COALESCE(SUM(amount_msat), 0) AS b FROM ledger_entries WHERE account = ?"
    params: list[Any] = [account]
    if submission_id is not None:
        sql += " AND submission_id = ?"
        params.append(submission_id)
    row = await conn.fetchone(sql, params)
    return int(row["b"]) if row else 0


@dataclass
class BountyBooks:
    """Where a bounty's money is, in msat; ``problems`` is empty when the books are sound."""

    bounty_id: str
    funded: int = 0  # sponsor funding plus the parts of stakes kept into the pool
    pool_left: int = 0
    owed: int = 0
    paid: int = 0
    held_back: int = 0
    refund_pending: int = 0
    refunded: int = 0
    fees: int = 0
    stakes_held: int = 0
    stakes_in: int = 0
    stakes_returned: int = 0
    stakes_owed: int = 0  # settled stakes' refunds not yet paid back
    stakes_kept: int = 0  # forfeited or kept into the pool
    problems: list[str] = field(default_factory=list)

    @property
    def out(self) -> int:
        """Everything the bounty's money has been allotted to, outside the pool."""
        return self.paid + self.owed + self.held_back + self.refunded + self.refund_pending + self.fees

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "out": self.out}


_SINKS_AND_BUCKETS_NONNEGATIVE = ("pool:", "holdback:", "owed:", "paid:", "refund:", "stake:", "unstaked:",
                                  "stake_owed:", "fees:", "routing_fees:")
_SOURCES_NONPOSITIVE = ("sponsor_funding:", "staker:", "lightning:")


async def bounty_books(conn: Store | Txn, bounty_id: str) -> BountyBooks:
    """Totals of one bounty and every rule they break."""
    rows = await conn.fetchall(
        "SELECT account, SUM(amount_msat) AS bal FROM ledger_entries WHERE bounty_id = ? GROUP BY account",
        (bounty_id,))
    books = BountyBooks(bounty_id)
    kept_stakes = await conn.fetchone(
        "SELECT COALESCE(SUM(amount_msat), 0) AS s FROM ledger_entries WHERE bounty_id = ? AND account = ? "
        "AND (txn_id LIKE 'stake_forfeit:%' OR txn_id LIKE 'stake_keep:%')", (bounty_id, pool(bounty_id)))
    for r in rows:
        account, bal = r["account"], int(r["bal"])
        if account.startswith(_SINKS_AND_BUCKETS_NONNEGATIVE) and bal < 0:
            books.problems.append(f"{account} is overdrawn by {-bal} msat")
        if account.startswith(_SOURCES_NONPOSITIVE) and bal > 0:
            books.problems.append(f"{account} holds {bal} msat more than its owner put in")
        if account == sponsor_funding(bounty_id):
            books.funded -= bal
        elif account == pool(bounty_id):
            books.pool_left = bal
        elif account == holdback(bounty_id):
            books.held_back = bal
        elif account == owed_sponsor(bounty_id):
            books.refund_pending = bal
        elif account == refund(bounty_id):
            books.refunded = bal
        elif account == FEES:
            books.fees = bal
        elif account.startswith("owed:"):
            books.owed += bal
        elif account.startswith("paid:"):
            books.paid += bal
        elif account.startswith("stake:"):
            books.stakes_held += bal
        elif account.startswith("staker:"):
            books.stakes_in -= bal
        elif account.startswith("unstaked:"):
            books.stakes_returned += bal
        elif account.startswith("stake_owed:"):
            books.stakes_owed += bal
    books.stakes_kept = int(kept_stakes["s"])
    books.funded += books.stakes_kept
    if books.stakes_in != books.stakes_held + books.stakes_owed + books.stakes_returned + books.stakes_kept:
        books.problems.append(
            f"stakes: {books.stakes_in} msat staked but {books.stakes_held} held + {books.stakes_owed} owed back "
            f"+ {books.stakes_returned} returned + {books.stakes_kept} kept = "
            f"{books.stakes_held + books.stakes_owed + books.stakes_returned + books.stakes_kept} msat")
    if books.out > books.funded:
        books.problems.append(
            f"paid {books.paid} + owed {books.owed} + held back {books.held_back} + refunded "
            f"{books.refunded + books.refund_pending} + fees {books.fees} = {books.out} msat exceeds the "
            f"{books.funded} msat funded")
    if books.out + books.pool_left != books.funded:
        books.problems.append(f"{books.funded} msat funded but {books.out + books.pool_left} msat accounted for")
    unbalanced = await conn.fetchall(
        "SELECT txn_id, SUM(amount_msat) AS s FROM ledger_entries WHERE bounty_id = ? "
        "GROUP BY txn_id HAVING SUM(amount_msat) != 0 LIMIT 5", (bounty_id,))
    for r in unbalanced:
        books.problems.append(f"transaction {r['txn_id']} does not balance (sums to {r['s']} msat)")
    # The ledger and the payments table must agree on what was sent.
    sent = await conn.fetchall(
        "SELECT submission_id, CASE purpose WHEN 'refund' THEN 'refund' WHEN 'stake_refund' THEN 'stake_refund' "
        "ELSE 'paid' END AS sink, SUM(amount_msat) AS s FROM payments "
        "WHERE bounty_id = ? AND status = 'COMPLETE' GROUP BY submission_id, sink", (bounty_id,))
    for r in sent:
        account = {"refund": refund(bounty_id), "stake_refund": unstaked(r["submission_id"] or "")}.get(
            r["sink"], paid(r["submission_id"]))
        # Only what payments sent; a refund by cancelling a hold has no payment row.
        on_books = await conn.fetchone(
            "SELECT COALESCE(SUM(amount_msat), 0) AS b FROM ledger_entries WHERE bounty_id = ? AND account = ? "
            "AND txn_id LIKE 'sent:%'", (bounty_id, account))
        if int(on_books["b"]) != int(r["s"]):
            books.problems.append(f"payments marked COMPLETE total {r['s']} msat for {account} but the "
                                  f"ledger shows {on_books['b']} msat")
    return books


async def books_balance(conn: Store | Txn) -> list[str]:
    """Whole-ledger checks: every transaction and the total sum to zero."""
    problems = []
    total = await conn.fetchone("SELECT COALESCE(SUM(amount_msat), 0) AS s FROM ledger_entries")
    if int(total["s"]) != 0:
        problems.append(f"the books sum to {total['s']} msat, not 0")
    for r in await conn.fetchall("SELECT txn_id, SUM(amount_msat) AS s FROM ledger_entries GROUP BY txn_id "
                                 "HAVING SUM(amount_msat) != 0 LIMIT 5"):
        problems.append(f"transaction {r['txn_id']} does not balance (sums to {r['s']} msat)")
    return problems


async def assert_sound(txn: Txn, bounty_id: str) -> BountyBooks:
    """Run after every transition, inside its transaction; raises :class:`InvariantBroken`."""
    books = await bounty_books(txn, bounty_id)
    if books.problems:
        raise InvariantBroken([f"bounty {bounty_id}: {p}" for p in books.problems])
    return books


@asynccontextmanager
async def transition(store: Store, bounty_id: str) -> AsyncIterator[Txn]:
    """A write transaction whose bounty's books are checked before it commits.

    If the check fails the transition is rolled back, payouts are halted (a persistent
    event) and :class:`InvariantBroken` propagates: the coordinator stops paying, loudly.
    """
    try:
        async with store.transaction() as txn:
            yield txn
            await assert_sound(txn, bounty_id)
    except InvariantBroken as exc:
        await halt(store, str(exc))
        raise


async def halt(store: Store, reason: str) -> None:
    """Stop all payouts, persistently and loudly (an event the TUI and the log show)."""
    log.error("PAYOUTS HALTED: %s", reason)
    async with store.transaction() as txn:
        await txn.event(HALTED_EVENT, None, reason=reason,
                        action="inspect `l402tui wallet ledger`, fix the cause, then resume payouts")


async def halted_reason(conn: Store | Txn) -> str | None:
    """The reason payouts are halted, or None if they are not."""
    row = await conn.fetchone(
        "SELECT kind, payload_json FROM events WHERE kind IN (?, ?) ORDER BY id DESC LIMIT 1",
        (HALTED_EVENT, RESUMED_EVENT))
    if row is None or row["kind"] == RESUMED_EVENT:
        return None
    return json.loads(row["payload_json"] or "{}").get("reason", "unknown reason")


async def resume(store: Store, note: str) -> None:
    """An operator's decision that the books are sound again (re-checked first)."""
    problems = await books_balance(store)
    for row in await store.fetchall("SELECT id FROM bounties"):
        problems += [f"bounty {row['id']}: {p}" for p in (await bounty_books(store, row["id"])).problems]
    if problems:
        raise InvariantBroken(problems)
    async with store.transaction() as txn:
        await txn.event(RESUMED_EVENT, None, note=note)


async def entries(conn: Store | Txn, *, bounty_id: str | None = None) -> list[dict[str, Any]]:
    sql = "SELECT * FROM ledger_entries"
    params: tuple = ()
    if bounty_id is not None:
        sql += " WHERE bounty_id = ?"
        params = (bounty_id,)
    return await conn.fetchall(sql + " ORDER BY id", params)
