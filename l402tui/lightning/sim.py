"""The embedded simulated Lightning network (the default backend).

Named nodes (coordinator, sponsor, agent-1, ...) with balances, real regtest BOLT11
invoices signed by each node's key, real sha256 preimages, hold invoices with a
block clock, routing fees and failure injection.  State lives in its own SQLite
file, shared by every process that opens it::

    net = SimNetwork.open(cfg.data_dir / "simnet.sqlite")
    sponsor = await net.create_node("sponsor", balance_msat=10_000_000)
    coordinator = net.node("coordinator")          # a LightningBackend
    await net.mine(6)                              # advance the shared block clock

The block height is ``genesis_height + (now - genesis_time) / block_interval_s +
mined offset``, so every process sees the same clock and HTLC expiry really
happens.  All database work runs on one worker thread per ``SimNetwork``.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Callable

from l402tui.lightning import _simpay
from l402tui.lightning._bolt11 import check_hex32, check_preimage_of, sha256_hex
from l402tui.lightning._simledger import FAULT_KINDS, SimLedger, Totals
from l402tui.lightning.backend import (FeeLimitExceeded, InsufficientBalance, InvalidRequest, Invoice,
                                       InvoiceExpired, InvoiceNotFound, InvoiceState, InvoiceUpdate,
                                       LightningBackend, LightningError, NodeStatus, NoRoute, Payment,
                                       PaymentRejected, PaymentState, PaymentTimeout)
from l402tui.store.privacy import make_private_file

__all__ = ["SimNetwork", "SimNode", "SimNodeInfo", "Totals", "FAULT_KINDS", "DEFAULT_FILE"]

DEFAULT_FILE = "simnet.sqlite"
_NODE_NAME_OK = "abcdefghijklmnopqrstuvwxyz0123456789-_"
_ERRORS: dict[str, type[LightningError]] = {
    "no_route": NoRoute, "balance": InsufficientBalance, "fee": FeeLimitExceeded,
    "expired": InvoiceExpired, "rejected": PaymentRejected,
}


@dataclass(frozen=True)
class SimNodeInfo:
    name: str
    pubkey: str
    balance_msat: int


def check_node_name(name: str) -> str:
    if not name or len(name) > 32 or any(ch not in _NODE_NAME_OK for ch in name):
        raise InvalidRequest(f"bad sim node name {name!r}: use 1-32 lower-case letters, digits, '-' or '_' "
                             "(e.g. agent-1)")
    return name


class SimNetwork:
    """One handle on a simulated network file; cheap to open, safe to share per process."""

    def __init__(self, ledger: SimLedger, *, hold_safety_blocks: int, poll_interval_s: float) -> None:
        self.ledger = ledger
        self.path = ledger.path
        self.hold_safety_blocks = hold_safety_blocks
        self.poll_interval_s = poll_interval_s
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="simnet")
        self._wakers: set[asyncio.Future] = set()
        self._closed = False

    @classmethod
    def open(cls, path: str | os.PathLike, *, block_interval_s: float = 10.0, base_fee_msat: int = 1000,
             fee_ppm: int = 1000, hold_safety_blocks: int = 6, network: str = "regtest",
             poll_interval_s: float = 0.02) -> "SimNetwork":
        """Open (creating if needed) the network file.  Clock and fee settings apply only
        when the file is created; afterwards the stored ones are shared by every process."""
        if block_interval_s <= 0:
            raise InvalidRequest(f"block_interval_s must be positive, got {block_interval_s}")
        make_private_file(path)  # 0600 in a 0700 dir: it holds every node's preimages
        ledger = SimLedger(Path(path), block_interval_s=block_interval_s, base_fee_msat=base_fee_msat,
                           fee_ppm=fee_ppm, network=network)
        return cls(ledger, hold_safety_blocks=hold_safety_blocks, poll_interval_s=poll_interval_s)

    @classmethod
    def from_config(cls, cfg: Any) -> "SimNetwork":
        lc = cfg.section("lightning")
        return cls.open(Path(cfg.data_dir) / DEFAULT_FILE, block_interval_s=lc["sim_block_interval_s"],
                        base_fee_msat=lc["sim_base_fee_msat"], fee_ppm=lc["sim_routing_fee_ppm"],
                        hold_safety_blocks=lc["hold_safety_blocks"], network=lc["network"])

    @property
    def block_interval_s(self) -> float:
        """The network's own block interval: fixed when the file was created, whatever
        this process's config says (use this, not lightning.sim_block_interval_s)."""
        return self.ledger.params.block_interval_s

    async def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if self._closed:
            raise LightningError(f"the simulated network handle for {self.path} is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(*args, **kwargs))

    def _notify(self) -> None:
        """Wake this process's update streams at once (other processes poll)."""
        for fut in list(self._wakers):
            if not fut.done():
                fut.get_loop().call_soon_threadsafe(_wake, fut)

    async def _wait_for_change(self, timeout: float) -> None:
        # A bare future and call_later rather than wait_for(Event.wait()): cancelling a
        # stream must never wait on a helper task.
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._wakers.add(fut)
        timer = loop.call_later(timeout, _wake, fut)
        try:
            await fut
        finally:
            timer.cancel()
            self._wakers.discard(fut)

    # -- nodes ---------------------------------------------------------------------

    async def create_node(self, name: str, balance_msat: int = 0, *, exist_ok: bool = False) -> "SimNode":
        check_node_name(name)
        if balance_msat < 0:
            raise InvalidRequest(f"balance_msat must be >= 0, got {balance_msat}")
        await self.run(self.ledger.create_node, name, balance_msat, exist_ok=exist_ok)
        return self.node(name)

    def node(self, name: str) -> "SimNode":
        """A backend speaking for ``name``; errors name the missing node on first use."""
        return SimNode(self, check_node_name(name))

    async def nodes(self) -> list[SimNodeInfo]:
        rows = await self.run(self.ledger.nodes)
        return [SimNodeInfo(r["name"], r["pubkey"], r["balance_msat"]) for r in rows]

    async def deposit(self, name: str, amount_msat: int) -> int:
        if amount_msat <= 0:
            raise InvalidRequest(f"deposit amount must be positive, got {amount_msat}")
        return await self.run(self.ledger.deposit, name, amount_msat)

    # -- clock, faults, accounting ---------------------------------------------------

    async def height(self) -> int:
        return await self.run(self.ledger.height)

    async def mine(self, blocks: int = 1) -> int:
        """Advance the shared block clock by ``blocks``; expiries due are applied now."""
        if blocks < 1:
            raise InvalidRequest(f"mine needs at least 1 block, got {blocks}")
        height = await self.run(self.ledger.mine, blocks)
        await self.sweep()
        return height

    async def sweep(self) -> int:
        changed = await self.run(self.ledger.sweep)
        if changed:
            self._notify()
        return changed

    async def inject_failure(self, node: str, kind: str, *, count: int | None = None,
                             delay_s: float = 0.0) -> None:
        """Make payments from (or to) ``node`` fail: ``no_route``, ``insufficient_balance``
        (payer side), or ``delay`` (wait ``delay_s`` before sending).  ``count`` limits how
        many payments are affected; None means until :meth:`clear_failures`."""
        await self.run(self.ledger.add_fault, node, kind, delay_s, count)

    async def clear_failures(self, node: str | None = None) -> None:
        await self.run(self.ledger.clear_faults, node)

    async def totals(self) -> Totals:
        return await self.run(self.ledger.totals)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._notify()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self.ledger.close)
        self._executor.shutdown(wait=False)


def _wake(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.set_result(None)


def _invoice(row: Any) -> Invoice:
    return Invoice(
        payment_hash=row["payment_hash"], bolt11=row["bolt11"] or "", amount_msat=row["amount_msat"],
        description=row["description"], state=InvoiceState(row["state"]), created_at=row["created_at"],
        expires_at=row["expires_at"], is_hold=bool(row["is_hold"]), preimage=row["preimage"],
        cltv_expiry=row["cltv_expiry"], amount_received_msat=row["amount_received_msat"],
        settled_at=row["settled_at"],
    )


def _payment(row: Any) -> Payment:
    return Payment(payment_hash=row["payment_hash"], amount_msat=row["amount_msat"], fee_msat=row["fee_msat"],
                   state=PaymentState(row["state"]), preimage=row["preimage"], destination=row["destination"],
                   error=row["error"])


class SimNode(LightningBackend):
    """One named node of a :class:`SimNetwork`, as a :class:`LightningBackend`."""

    name = "sim"

    def __init__(self, net: SimNetwork, node_name: str, *, owns_network: bool = False) -> None:
        self.net = net
        self.node_name = node_name
        self._owns_network = owns_network  # make_backend's node closes the handle it opened

    async def close(self) -> None:
        if self._owns_network:
            await self.net.close()

    def __repr__(self) -> str:
        return f"SimNode({self.node_name!r}, {str(self.net.path)!r})"

    async def status(self) -> NodeStatus:
        def read():
            row = self.net.ledger.node_row(self.node_name)
            return row, self.net.ledger.height()

        row, height = await self.net.run(read)
        return NodeStatus(node_id=row["pubkey"], alias=self.node_name, network=self.net.ledger.params.network,
                          block_height=height, balance_msat=row["balance_msat"], backend="sim")

    async def create_invoice(self, amount_msat: int, description: str, expiry_s: int = 3600,
                             *, preimage: str | None = None) -> Invoice:
        preimage = check_hex32(preimage, "preimage") if preimage is not None else os.urandom(32).hex()
        row = await self.net.run(_simpay.create_invoice, self.net.ledger, self.node_name,
                                 amount_msat=amount_msat, description=description, expiry_s=expiry_s,
                                 payment_hash=sha256_hex(preimage), preimage=preimage, is_hold=False,
                                 cltv_delta=18, safety_blocks=0)
        return _invoice(row)

    async def create_hold_invoice(self, payment_hash: str, amount_msat: int, description: str,
                                  expiry_s: int = 3600, cltv_delta: int = 144, *,
                                  preimage: str | None = None) -> Invoice:
        check_preimage_of(payment_hash, preimage)  # checked, then forgotten: the caller settles with it
        row = await self.net.run(_simpay.create_invoice, self.net.ledger, self.node_name,
                                 amount_msat=amount_msat, description=description, expiry_s=expiry_s,
                                 payment_hash=check_hex32(payment_hash, "payment_hash"), preimage=None,
                                 is_hold=True, cltv_delta=cltv_delta, safety_blocks=self.net.hold_safety_blocks)
        return _invoice(row)

    async def settle_hold(self, preimage: str, *, payment_hash: str | None = None) -> Invoice:
        try:
            row = await self.net.run(_simpay.settle, self.net.ledger, self.node_name, preimage, payment_hash)
        finally:
            self.net._notify()
        return _invoice(row)

    async def cancel_hold(self, payment_hash: str) -> Invoice:
        row = await self.net.run(_simpay.cancel, self.net.ledger, self.node_name, payment_hash)
        self.net._notify()
        return _invoice(row)

    async def lookup_invoice(self, payment_hash: str) -> Invoice:
        payment_hash = check_hex32(payment_hash, "payment_hash")
        await self.net.sweep()
        row = await self.net.run(lambda: self.net.ledger.conn.execute(
            "SELECT * FROM invoices WHERE payment_hash = ? AND node = ?", (payment_hash, self.node_name)).fetchone())
        if row is None:
            raise InvoiceNotFound(f"node {self.node_name!r} has no invoice with payment hash {payment_hash}")
        return _invoice(row)

    async def list_invoices(self) -> list[Invoice]:
        await self.net.sweep()
        rows = await self.net.run(lambda: self.net.ledger.conn.execute(
            "SELECT * FROM invoices WHERE node = ? ORDER BY created_at, rowid", (self.node_name,)).fetchall())
        return [_invoice(r) for r in rows]

    async def forget_expired_invoices(self, payment_hashes: list[str]) -> int:
        return await self.net.run(self.net.ledger.forget_expired, self.node_name, list(payment_hashes))

    async def list_payments(self) -> list[Payment]:
        rows = await self.net.run(lambda: self.net.ledger.conn.execute(
            "SELECT * FROM payments WHERE payer = ? ORDER BY created_at, rowid", (self.node_name,)).fetchall())
        return [_payment(r) for r in rows]

    async def pay(self, bolt11: str, *, max_fee_msat: int | None = None,
                  amount_msat: int | None = None, timeout_s: float = 60.0) -> Payment:
        if not isinstance(bolt11, str) or not bolt11.strip():
            raise InvalidRequest("pay needs a BOLT11 invoice string")
        await self._injected_delay(bolt11, timeout_s)
        outcome = await self.net.run(_simpay.pay, self.net.ledger, self.node_name, bolt11,
                                     amount_msat=amount_msat, max_fee_msat=max_fee_msat)
        self.net._notify()
        return self._result(outcome)

    async def keysend(self, destination: str, amount_msat: int, *,
                      max_fee_msat: int | None = None, preimage: str | None = None) -> Payment:
        """Spontaneous payment.  ``preimage`` (sim only) fixes the payment hash up front, so
        a caller can record it before sending and retry without ever paying twice."""
        destination = destination.strip().lower()
        if len(destination) != 66:
            raise InvalidRequest(f"keysend destination must be a 33-byte node id (66 hex), got {destination!r}")
        outcome = await self.net.run(_simpay.keysend, self.net.ledger, self.node_name, destination,
                                     amount_msat, max_fee_msat, preimage)
        self.net._notify()
        return self._result(outcome)

    async def _injected_delay(self, bolt11: str, timeout_s: float) -> None:
        from l402tui.lightning._bolt11 import decode_invoice

        ledger = self.net.ledger

        def delay_for() -> float:
            row = ledger.conn.execute("SELECT node FROM invoices WHERE bolt11 = ?", (bolt11.strip(),)).fetchone()
            if row is None:
                try:
                    pubkey = decode_invoice(bolt11).payee
                except InvalidRequest:
                    return 0.0  # pay() reports the bad invoice itself
                row = ledger.conn.execute("SELECT name FROM nodes WHERE pubkey = ?", (pubkey,)).fetchone()
            return ledger.payment_delay(self.node_name, row[0] if row else None)

        delay = await self.net.run(delay_for)
        if delay <= 0:
            return
        # The delay stands for path-finding and hops before the HTLC is locked in, so
        # on timeout nothing has been sent and nothing is owed.
        if delay >= timeout_s:
            await asyncio.sleep(timeout_s)
            raise PaymentTimeout(f"no route answered within {timeout_s:g} s (injected delay {delay:g} s); "
                                 "nothing was sent, it is safe to retry")
        await asyncio.sleep(delay)

    @staticmethod
    def _result(outcome: _simpay.PayOutcome) -> Payment:
        payment = _payment(outcome.payment)
        if outcome.error_kind is not None:
            exc = _ERRORS[outcome.error_kind](payment.error or outcome.error_kind)
            exc.payment = payment  # type: ignore[attr-defined]
            raise exc
        return payment

    async def lookup_payment(self, payment_hash: str) -> Payment:
        payment_hash = check_hex32(payment_hash, "payment_hash")
        await self.net.sweep()
        row = await self.net.run(lambda: self.net.ledger.conn.execute(
            "SELECT * FROM payments WHERE payer = ? AND payment_hash = ?", (self.node_name, payment_hash)).fetchone())
        if row is None:
            raise InvoiceNotFound(f"node {self.node_name!r} has made no payment with hash {payment_hash}")
        return _payment(row)

    def updates(self, since_seq: int | None = None) -> AsyncIterator[InvoiceUpdate]:
        """State changes of this node's invoices committed from the moment of this call
        on (or after change ``since_seq``, which each update carries in
        ``extra["seq"]``), by any process on the network."""
        return self._updates(time.time(), since_seq)

    async def _updates(self, called_at: float, since_seq: int | None) -> AsyncIterator[InvoiceUpdate]:
        ledger = self.net.ledger
        # Start just before the first change stamped at or after the call, so a change
        # made between the call and the first iteration is never lost.
        last = since_seq if since_seq is not None else await self.net.run(lambda: ledger.conn.execute(
            "SELECT COALESCE(MIN(seq), (SELECT COALESCE(MAX(seq), 0) + 1 FROM changes)) - 1 "
            "FROM changes WHERE at >= ?", (called_at,)).fetchone()[0])
        mark = None
        while not self.net._closed:
            rows, mark = await self.net.run(ledger.poll, self.node_name, last, mark)
            for row in rows:
                last = row["seq"]
                extra = json.loads(row["extra"])
                extra["seq"] = row["seq"]
                yield InvoiceUpdate(payment_hash=row["payment_hash"], state=InvoiceState(row["state"]),
                                    amount_msat=row["amount_msat"], is_hold=bool(row["is_hold"]),
                                    at=row["at"], extra=extra)
            if not rows:
                await self.net._wait_for_change(self.net.poll_interval_s)
