"""The simulated network's state: one SQLite file shared by every process on the network.

A real node keeps its own database; the simulated network keeps all its nodes in
one file (``<data_dir>/simnet.sqlite``) that the coordinator daemon, agents and the
wallet CLI open at the same time.  Every money movement is one ``BEGIN IMMEDIATE``
transaction, so two processes can never spend the same msat, and every invoice
state change appends to ``changes`` (a monotonically increasing log) that
``updates()`` polls from any process.

Money invariant (checked by :meth:`SimLedger.totals`):
``sum(node balances) + held HTLCs (amount + fee of PENDING payments) + routing fees
collected == total minted``.

This class is synchronous and owns one connection; ``sim.SimNetwork`` runs it on a
single worker thread.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS nodes (
    name TEXT PRIMARY KEY,
    pubkey TEXT NOT NULL UNIQUE,
    seed TEXT NOT NULL,
    balance_msat INTEGER NOT NULL CHECK (balance_msat >= 0),
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS invoices (
    payment_hash TEXT PRIMARY KEY,
    node TEXT NOT NULL REFERENCES nodes(name),
    bolt11 TEXT UNIQUE,                 -- NULL for keysend receipts
    payment_secret TEXT,
    amount_msat INTEGER NOT NULL,       -- 0: any amount
    description TEXT NOT NULL,
    is_hold INTEGER NOT NULL,
    preimage TEXT,                      -- NULL for hold invoices until settled
    state TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    cltv_delta INTEGER NOT NULL,
    safety_blocks INTEGER NOT NULL DEFAULT 0,
    cltv_expiry INTEGER,                -- height at which the held HTLC expires
    paid_by TEXT,
    amount_received_msat INTEGER NOT NULL DEFAULT 0,
    settled_at REAL,
    label TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS invoices_node ON invoices(node, created_at);
CREATE INDEX IF NOT EXISTS invoices_state ON invoices(state);
CREATE TABLE IF NOT EXISTS payments (
    payer TEXT NOT NULL,
    payment_hash TEXT NOT NULL,
    destination TEXT,
    amount_msat INTEGER NOT NULL,
    fee_msat INTEGER NOT NULL,
    state TEXT NOT NULL,                -- PENDING | COMPLETE | FAILED
    preimage TEXT,
    error TEXT,
    kind TEXT NOT NULL,                 -- bolt11 | keysend
    created_at REAL NOT NULL,
    resolved_at REAL,
    PRIMARY KEY (payer, payment_hash)
);
CREATE INDEX IF NOT EXISTS payments_state ON payments(state);
CREATE TABLE IF NOT EXISTS changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    node TEXT NOT NULL,
    payment_hash TEXT NOT NULL,
    state TEXT NOT NULL,
    amount_msat INTEGER NOT NULL,
    is_hold INTEGER NOT NULL,
    at REAL NOT NULL,
    extra TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS changes_node ON changes(node, seq);
CREATE TABLE IF NOT EXISTS faults (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    node TEXT NOT NULL,
    kind TEXT NOT NULL,                 -- no_route | insufficient_balance | delay
    delay_s REAL NOT NULL DEFAULT 0,
    remaining INTEGER                   -- NULL: until cleared
);
"""

GENESIS_HEIGHT = 200
FAULT_KINDS = ("no_route", "insufficient_balance", "delay")


@dataclass(frozen=True)
class Totals:
    minted_msat: int
    balances_msat: int
    held_msat: int
    fees_msat: int

    @property
    def balanced(self) -> bool:
        return self.balances_msat + self.held_msat + self.fees_msat == self.minted_msat


@dataclass(frozen=True)
class NetworkParams:
    genesis_time: float
    genesis_height: int
    block_interval_s: float
    base_fee_msat: int
    fee_ppm: int
    network: str


class SimLedger:
    def __init__(self, path: Path, *, block_interval_s: float, base_fee_msat: int, fee_ppm: int,
                 network: str = "regtest") -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we issue BEGIN IMMEDIATE ourselves.  The connection is
        # created on the caller's thread and then used only by the network's worker.
        self.conn = sqlite3.connect(str(self.path), timeout=30.0, isolation_level=None,
                                    check_same_thread=False)
        self.conn.row_factory = sqlite3.Row
        # PRAGMA data_version moves when *another* connection commits; _writes counts
        # our own commits.  Together they let update streams skip polls cheaply.
        self._writes = 0
        self._next_due = 0.0
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("PRAGMA foreign_keys=ON")
        # executescript commits implicitly, so it runs outside our own transactions;
        # IF NOT EXISTS makes two processes creating the file at once harmless.
        self.conn.executescript(SCHEMA)
        with self.txn() as c:
            if self._meta(c, "genesis_time") is None:
                now = time.time()
                for key, value in (("genesis_time", now), ("genesis_height", GENESIS_HEIGHT),
                                   ("block_interval_s", block_interval_s), ("height_offset", 0),
                                   ("base_fee_msat", base_fee_msat), ("fee_ppm", fee_ppm),
                                   ("network", network), ("minted_msat", 0), ("fees_msat", 0)):
                    c.execute("INSERT INTO meta(key, value) VALUES (?, ?)", (key, str(value)))
            m = dict(c.execute("SELECT key, value FROM meta").fetchall())
        # The first process to create the file fixes the network's clock and fee policy;
        # later processes share them whatever their own config says.
        self.params = NetworkParams(float(m["genesis_time"]), int(m["genesis_height"]),
                                    float(m["block_interval_s"]), int(m["base_fee_msat"]),
                                    int(m["fee_ppm"]), m["network"])

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def txn(self) -> Iterator[sqlite3.Connection]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        else:
            self.conn.execute("COMMIT")
            self._writes += 1

    # -- small helpers -------------------------------------------------------------

    @staticmethod
    def _meta(c: sqlite3.Connection, key: str) -> str | None:
        row = c.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    @staticmethod
    def _add_meta_int(c: sqlite3.Connection, key: str, delta: int) -> None:
        c.execute("UPDATE meta SET value = CAST(CAST(value AS INTEGER) + ? AS TEXT) WHERE key = ?",
                  (delta, key))

    def height(self, now: float | None = None) -> int:
        """Block height shared by every process: derived from wall time plus mined offset."""
        now = time.time() if now is None else now
        offset = int(self._meta(self.conn, "height_offset") or 0)
        p = self.params
        return p.genesis_height + int(max(0.0, now - p.genesis_time) // p.block_interval_s) + offset

    def fee_for(self, amount_msat: int) -> int:
        return self.params.base_fee_msat + amount_msat * self.params.fee_ppm // 1_000_000

    @staticmethod
    def log_change(c: sqlite3.Connection, node: str, payment_hash: str, state: str,
                   amount_msat: int, is_hold: bool, now: float, **extra) -> None:
        c.execute("INSERT INTO changes(node, payment_hash, state, amount_msat, is_hold, at, extra) "
                  "VALUES (?, ?, ?, ?, ?, ?, ?)",
                  (node, payment_hash, state, amount_msat, int(is_hold), now, json.dumps(extra)))

    # -- nodes and the faucet ------------------------------------------------------

    def create_node(self, name: str, balance_msat: int, *, exist_ok: bool) -> sqlite3.Row:
        from l402tui.lightning._bolt11 import NodeKey

        seed = os.urandom(32).hex()
        key = NodeKey.from_seed(seed)
        with self.txn() as c:
            row = c.execute("SELECT * FROM nodes WHERE name = ?", (name,)).fetchone()
            if row is not None:
                if exist_ok:
                    return row
                from l402tui.lightning.backend import InvalidRequest

                raise InvalidRequest(f"sim node {name!r} already exists in {self.path}; "
                                     "use net.node(name) to speak for it")
            c.execute("INSERT INTO nodes(name, pubkey, seed, balance_msat, created_at) VALUES (?, ?, ?, ?, ?)",
                      (name, key.pubkey, seed, balance_msat, time.time()))
            self._add_meta_int(c, "minted_msat", balance_msat)
            return c.execute("SELECT * FROM nodes WHERE name = ?", (name,)).fetchone()

    def deposit(self, name: str, amount_msat: int) -> int:
        """Mint new msat into a node (an on-chain deposit opening more channel capacity)."""
        with self.txn() as c:
            cur = c.execute("UPDATE nodes SET balance_msat = balance_msat + ? WHERE name = ?",
                            (amount_msat, name))
            if cur.rowcount == 0:
                raise self.unknown_node(name)
            self._add_meta_int(c, "minted_msat", amount_msat)
            return c.execute("SELECT balance_msat FROM nodes WHERE name = ?", (name,)).fetchone()[0]

    def node_row(self, name: str) -> sqlite3.Row:
        row = self.conn.execute("SELECT * FROM nodes WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise self.unknown_node(name)
        return row

    def unknown_node(self, name: str) -> Exception:
        from l402tui.lightning.backend import InvalidRequest

        names = [r[0] for r in self.conn.execute("SELECT name FROM nodes ORDER BY name")]
        return InvalidRequest(f"no sim node named {name!r} in {self.path} (nodes: "
                              f"{', '.join(names) or 'none yet'}); create it with "
                              f"`l402tui wallet nodes --create {name}`")

    def nodes(self) -> list[sqlite3.Row]:
        return self.conn.execute("SELECT name, pubkey, balance_msat, created_at FROM nodes ORDER BY name").fetchall()

    def mine(self, blocks: int) -> int:
        with self.txn() as c:
            self._add_meta_int(c, "height_offset", blocks)
        return self.height()

    def totals(self) -> Totals:
        c = self.conn
        c.execute("BEGIN")  # one consistent snapshot for all four sums
        try:
            minted = int(self._meta(c, "minted_msat") or 0)
            fees = int(self._meta(c, "fees_msat") or 0)
            balances = c.execute("SELECT COALESCE(SUM(balance_msat), 0) FROM nodes").fetchone()[0]
            held = c.execute("SELECT COALESCE(SUM(amount_msat + fee_msat), 0) FROM payments "
                             "WHERE state = 'PENDING'").fetchone()[0]
        finally:
            c.execute("COMMIT")
        return Totals(minted, int(balances), int(held), fees)

    # -- failure injection ---------------------------------------------------------

    def add_fault(self, node: str, kind: str, delay_s: float, count: int | None) -> None:
        from l402tui.lightning.backend import InvalidRequest

        if kind not in FAULT_KINDS:
            raise InvalidRequest(f"unknown fault {kind!r}; use one of {', '.join(FAULT_KINDS)}")
        with self.txn() as c:
            if c.execute("SELECT 1 FROM nodes WHERE name = ?", (node,)).fetchone() is None:
                raise self.unknown_node(node)
            c.execute("INSERT INTO faults(node, kind, delay_s, remaining) VALUES (?, ?, ?, ?)",
                      (node, kind, delay_s, count))

    def clear_faults(self, node: str | None) -> None:
        with self.txn() as c:
            if node is None:
                c.execute("DELETE FROM faults")
            else:
                c.execute("DELETE FROM faults WHERE node = ?", (node,))

    @staticmethod
    def take_fault(c: sqlite3.Connection, nodes: tuple[str, ...], kind: str) -> sqlite3.Row | None:
        """The first active fault of ``kind`` on any of ``nodes``, consuming one use."""
        marks = ",".join("?" * len(nodes))
        row = c.execute(f"SELECT * FROM faults WHERE kind = ? AND node IN ({marks}) "
                        "AND (remaining IS NULL OR remaining > 0) ORDER BY id LIMIT 1",
                        (kind, *nodes)).fetchone()
        if row is not None and row["remaining"] is not None:
            c.execute("UPDATE faults SET remaining = remaining - 1 WHERE id = ?", (row["id"],))
        return row

    def payment_delay(self, payer: str, payee: str | None) -> float:
        """Injected delay for a payment from ``payer`` (to ``payee``), consumed now."""
        if self.conn.execute("SELECT 1 FROM faults WHERE kind = 'delay' LIMIT 1").fetchone() is None:
            return 0.0  # the usual case: no write lock taken
        with self.txn() as c:
            row = self.take_fault(c, (payer,) if payee is None else (payer, payee), "delay")
        return float(row["delay_s"]) if row is not None else 0.0

    # -- the change log ------------------------------------------------------------

    def max_seq(self) -> int:
        return self.conn.execute("SELECT COALESCE(MAX(seq), 0) FROM changes").fetchone()[0]

    def poll(self, node: str, after: int, mark: tuple | None) -> tuple[list[sqlite3.Row], tuple]:
        """Changes of ``node`` after ``after``, sweeping expiries first.  ``mark`` is what
        the previous poll returned: if nothing was committed anywhere since and no
        expiry is due, answer at the cost of one PRAGMA."""
        now = time.time()
        version = self.conn.execute("PRAGMA data_version").fetchone()[0]
        if mark == (version, self._writes) and now < self._next_due:
            return [], mark
        self.sweep(now)
        mark = (version, self._writes)
        rows = self.changes_after(node, after)
        self._next_due = self.next_due()
        return rows, mark

    def next_due(self) -> float:
        """Wall time of the next expiry or auto-cancel, given the current state."""
        c = self.conn
        due = c.execute("SELECT MIN(expires_at) FROM invoices WHERE state = 'OPEN'").fetchone()[0]
        height = c.execute("SELECT MIN(cltv_expiry - safety_blocks) FROM invoices "
                           "WHERE state = 'ACCEPTED'").fetchone()[0]
        at = float("inf") if due is None else float(due)
        if height is not None:
            p = self.params
            offset = int(self._meta(c, "height_offset") or 0)
            at = min(at, p.genesis_time + (height - p.genesis_height - offset) * p.block_interval_s)
        return at

    def changes_after(self, node: str, seq: int, limit: int = 500) -> list[sqlite3.Row]:
        return self.conn.execute("SELECT * FROM changes WHERE node = ? AND seq > ? ORDER BY seq LIMIT ?",
                                 (node, seq, limit)).fetchall()

    # -- expiry: runs from whichever process looks first ------------------------------

    def sweep(self, now: float | None = None) -> int:
        """Expire unpaid invoices past their expiry and auto-cancel held HTLCs that have
        reached ``cltv_expiry - safety_blocks``.  Idempotent; returns how many changed."""
        now = time.time() if now is None else now
        height = self.height(now)
        due_sql = ("SELECT payment_hash FROM invoices WHERE (state = 'OPEN' AND expires_at <= ?) "
                   "OR (state = 'ACCEPTED' AND cltv_expiry - safety_blocks <= ?)")
        # A cheap read first: writers take the lock only when something is due.
        if self.conn.execute(due_sql + " LIMIT 1", (now, height)).fetchone() is None:
            return 0
        changed = 0
        with self.txn() as c:
            for (payment_hash,) in c.execute(due_sql, (now, height)).fetchall():
                inv = c.execute("SELECT * FROM invoices WHERE payment_hash = ?", (payment_hash,)).fetchone()
                if inv["state"] == "OPEN":
                    c.execute("UPDATE invoices SET state = 'EXPIRED' WHERE payment_hash = ?", (payment_hash,))
                    self.log_change(c, inv["node"], payment_hash, "EXPIRED", inv["amount_msat"],
                                    bool(inv["is_hold"]), now)
                else:
                    cancel_accepted(self, c, inv, now, reason=(
                        f"auto-cancelled at height {height}: the held HTLC expires at height "
                        f"{inv['cltv_expiry']} and the safety margin is {inv['safety_blocks']} blocks"))
                changed += 1
        return changed

    def forget_expired(self, node: str, payment_hashes: list[str]) -> int:
        """Delete ``node``'s plain invoices among ``payment_hashes`` that expired unpaid (and
        nobody tried to pay), with their change rows; returns how many.  Held, paid or
        still payable invoices stay."""
        self.sweep()
        forgotten = 0
        with self.txn() as c:
            for payment_hash in payment_hashes:
                gone = c.execute(
                    "DELETE FROM invoices WHERE payment_hash = ? AND node = ? AND is_hold = 0 AND state = 'EXPIRED' "
                    "AND amount_received_msat = 0 AND settled_at IS NULL AND NOT EXISTS "
                    "(SELECT 1 FROM payments p WHERE p.payment_hash = invoices.payment_hash)",
                    (payment_hash, node)).rowcount
                if gone:
                    c.execute("DELETE FROM changes WHERE payment_hash = ? AND node = ?", (payment_hash, node))
                    forgotten += 1
        return forgotten


def cancel_accepted(ledger: SimLedger, c: sqlite3.Connection, inv: sqlite3.Row, now: float, *,
                    reason: str) -> None:
    """Fail a held HTLC back: refund the payer in full, mark the payment FAILED."""
    payment = c.execute("SELECT * FROM payments WHERE payer = ? AND payment_hash = ?",
                        (inv["paid_by"], inv["payment_hash"])).fetchone()
    if payment is not None and payment["state"] == "PENDING":
        c.execute("UPDATE nodes SET balance_msat = balance_msat + ? WHERE name = ?",
                  (payment["amount_msat"] + payment["fee_msat"], payment["payer"]))
        c.execute("UPDATE payments SET state = 'FAILED', error = ?, resolved_at = ? "
                  "WHERE payer = ? AND payment_hash = ?", (reason, now, payment["payer"], inv["payment_hash"]))
    c.execute("UPDATE invoices SET state = 'CANCELED' WHERE payment_hash = ?", (inv["payment_hash"],))
    ledger.log_change(c, inv["node"], inv["payment_hash"], "CANCELED", inv["amount_received_msat"], True, now,
                      reason=reason)
