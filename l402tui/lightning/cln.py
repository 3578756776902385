"""Core Lightning backend: pyln-client ``LightningRpc`` calls run in a thread pool.

Plain invoices are CLN's own (``invoice``, ``listinvoices``, ``waitanyinvoice``);
hold invoices go through whichever hold plugin the node runs (``cln_hold.py``: ours,
prefixed or not, whose ``waitanyholdinvoice`` mirrors ``waitanyinvoice``; Boltz's
``hold`` or daywalker90's ``holdinvoice``, polled).  ``updates()`` merges the two
streams; error 904 is a timeout (ask again), anything else means lightningd went
away, so we back off and reconnect.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, AsyncIterator

from l402tui.lightning.backend import (BackendUnavailable, FeeLimitExceeded, InsufficientBalance,
                                       InvalidRequest, InvalidState, Invoice, InvoiceExpired,
                                       InvoiceNotFound, InvoiceState, InvoiceUpdate, LightningBackend,
                                       LightningError, NodeStatus, NoRoute, Payment, PaymentRejected,
                                       PaymentState, WrongPreimage)
from l402tui.lightning.cln_hold import DAYWALKER_LABEL, HoldDialect, OursDialect, detect
from l402tui.lightning.cln_hold import msat as _msat

TIMEOUT = 904  # waitany*: nothing happened within the timeout
# Codes from our plugin (see cln_holdinvoice.py) and from CLN's pay / keysend.
_PLUGIN_ERRORS = {4101: InvoiceNotFound, 4102: WrongPreimage, 4103: InvalidState, 4104: InvalidRequest}
_PAY_ERRORS = {205: NoRoute, 206: FeeLimitExceeded, 207: InvoiceExpired}
_NATIVE_STATE = {"unpaid": InvoiceState.OPEN, "paid": InvoiceState.SETTLED, "expired": InvoiceState.EXPIRED}
_PAY_STATE = {"pending": PaymentState.PENDING, "complete": PaymentState.COMPLETE, "failed": PaymentState.FAILED}


class ClnBackend(LightningBackend):
    name = "cln"

    def __init__(self, rpc_path: str | os.PathLike, *, network: str = "regtest",
                 wait_timeout_s: int = 10) -> None:
        from pyln.client import LightningRpc

        self.rpc_path = Path(rpc_path).expanduser()
        self.network = network
        self.wait_timeout_s = wait_timeout_s
        self._rpc = LightningRpc(str(self.rpc_path))
        # Long waits (waitany*, pay on a hold invoice) each hold a thread.
        self._executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="cln-rpc")
        self._closed = False
        self._keysend_method: str | None = None  # learnt at the first keysend
        self._dialect: HoldDialect | None = None  # the node's hold plugin, found at first use
        self.hold_poll_s = 1.0  # how often plugins without a change stream are polled

    @classmethod
    def from_config(cls, cfg: Any) -> "ClnBackend":
        path = cfg.get("lightning.cln_rpc_path")
        if not path:
            raise BackendUnavailable("lightning.backend is 'cln' but lightning.cln_rpc_path is empty; set it to "
                                     "lightningd's RPC socket, e.g. ~/.lightning/regtest/lightning-rpc")
        return cls(path, network=cfg.get("lightning.network"))

    async def _call(self, method: str, **params: Any) -> Any:
        from pyln.client import RpcError

        if self._closed:
            raise BackendUnavailable("this cln backend is closed")
        loop = asyncio.get_running_loop()
        payload = {k: v for k, v in params.items() if v is not None}
        try:
            return await loop.run_in_executor(self._executor, self._rpc.call, method, payload)
        except RpcError as exc:
            raise _translate(method, exc.error) from None
        except OSError as exc:
            raise BackendUnavailable(f"cannot reach lightningd at {self.rpc_path} ({exc}); is it running, and "
                                     "is lightning.cln_rpc_path right?") from None

    async def status(self) -> NodeStatus:
        info = await self._call("getinfo")
        channels = (await self._call("listpeerchannels")).get("channels", [])
        spendable = sum(_msat(c.get("spendable_msat")) for c in channels if c.get("state") == "CHANNELD_NORMAL")
        return NodeStatus(node_id=info["id"], alias=info.get("alias", ""), network=info.get("network", self.network),
                          block_height=int(info.get("blockheight", 0)), balance_msat=spendable, backend="cln")

    async def create_invoice(self, amount_msat: int, description: str, expiry_s: int = 3600,
                             *, preimage: str | None = None) -> Invoice:
        label = f"l402tui-{os.urandom(8).hex()}"
        made = await self._call("invoice", amount_msat=amount_msat if amount_msat else "any", label=label,
                                description=description, expiry=expiry_s, preimage=preimage)
        return await self.lookup_invoice(made["payment_hash"])

    async def hold_dialect(self) -> HoldDialect:
        """The hold-invoice plugin this node runs (read from ``help`` once)."""
        if self._dialect is None:
            self._dialect = await detect(self._call)
        return self._dialect

    async def create_hold_invoice(self, payment_hash: str, amount_msat: int, description: str,
                                  expiry_s: int = 3600, cltv_delta: int = 144, *,
                                  preimage: str | None = None) -> Invoice:
        """``preimage`` reaches lightningd only for daywalker90's plugin, which cannot work
        without it; with ours or Boltz's it is checked and stays here."""
        from l402tui.lightning._bolt11 import check_hex32, check_preimage_of

        payment_hash = check_hex32(payment_hash, "payment_hash")
        preimage = check_preimage_of(payment_hash, preimage)
        dialect = await self.hold_dialect()
        given = None if dialect.keeps_preimage_off_node else preimage
        return _hold_invoice(await dialect.create(payment_hash, amount_msat, description, expiry_s, cltv_delta,
                                                  given))

    async def settle_hold(self, preimage: str, *, payment_hash: str | None = None) -> Invoice:
        return _hold_invoice(await (await self.hold_dialect()).settle(preimage, payment_hash))

    async def cancel_hold(self, payment_hash: str) -> Invoice:
        return _hold_invoice(await (await self.hold_dialect()).cancel(payment_hash))

    async def lookup_invoice(self, payment_hash: str) -> Invoice:
        native = (await self._call("listinvoices", payment_hash=payment_hash)).get("invoices", [])
        if native and not _held_natively(native[0]):
            return _native_invoice(native[0])
        return _hold_invoice(await (await self.hold_dialect()).lookup(payment_hash))

    async def list_invoices(self) -> list[Invoice]:
        holds = [_hold_invoice(r) for r in await (await self.hold_dialect()).list()]
        held = {h.payment_hash for h in holds}
        native = [_native_invoice(i) for i in (await self._call("listinvoices")).get("invoices", [])
                  if i["payment_hash"] not in held]
        return sorted(native + holds, key=lambda i: i.created_at)

    async def pay(self, bolt11: str, *, max_fee_msat: int | None = None,
                  amount_msat: int | None = None, timeout_s: float = 60.0) -> Payment:
        from l402tui.lightning._bolt11 import decode_invoice

        payment_hash = decode_invoice(bolt11).payment_hash
        try:
            previous = await self.lookup_payment(payment_hash)
            if previous.state is not PaymentState.FAILED:
                return previous  # never pay twice
        except InvoiceNotFound:
            pass
        # CLN's pay blocks until the payee settles or fails, which for a hold invoice may be
        # days: run it on a thread and report PENDING if it has not finished in time.
        call = asyncio.ensure_future(self._call("pay", bolt11=bolt11, amount_msat=amount_msat,
                                                maxfee=max_fee_msat, retry_for=int(max(timeout_s, 1))))
        try:
            result = await asyncio.wait_for(asyncio.shield(call), timeout_s)
        except TimeoutError:
            call.add_done_callback(lambda f: f.cancelled() or f.exception())  # outcome read via listpays
            try:
                return await self.lookup_payment(payment_hash)
            except InvoiceNotFound:
                # pay has not sent its first part yet (real lightningd routes first): it is in
                # flight, so PENDING, not "no payment".
                inv = decode_invoice(bolt11)
                return Payment(payment_hash=payment_hash, amount_msat=amount_msat or inv.amount_msat, fee_msat=0,
                               state=PaymentState.PENDING, destination=inv.payee)
        amount = _msat(result.get("amount_msat"))
        return Payment(payment_hash=payment_hash, amount_msat=amount,
                       fee_msat=_msat(result.get("amount_sent_msat")) - amount,
                       state=_PAY_STATE.get(result.get("status"), PaymentState.COMPLETE),
                       preimage=result.get("payment_preimage"), destination=result.get("destination"))

    async def keysend(self, destination: str, amount_msat: int, *,
                      max_fee_msat: int | None = None) -> Payment:
        # CLN 26 refuses the old ``keysend`` command as deprecated; ``xkeysend`` replaces it
        # (older nodes have only ``keysend``).  Its answer has no payment_hash or status.
        method = self._keysend_method or "keysend"
        try:
            result = await self._call(method, destination=destination, amount_msat=amount_msat,
                                      maxfee=max_fee_msat)
        except LightningError as exc:
            if method != "keysend" or getattr(exc, "code", None) != -32601:
                raise
            method = "xkeysend"
            result = await self._call(method, destination=destination, amount_msat=amount_msat,
                                      maxfee=max_fee_msat)
        self._keysend_method = method
        preimage = result.get("payment_preimage")
        payment_hash = result.get("payment_hash") or hashlib.sha256(bytes.fromhex(preimage)).hexdigest()
        amount = _msat(result.get("amount_msat"))
        return Payment(payment_hash=payment_hash, amount_msat=amount,
                       fee_msat=_msat(result.get("amount_sent_msat")) - amount,
                       state=_PAY_STATE.get(result.get("status"), PaymentState.COMPLETE),
                       preimage=preimage, destination=destination)

    async def lookup_payment(self, payment_hash: str) -> Payment:
        pays = (await self._call("listpays", payment_hash=payment_hash)).get("pays", [])
        if not pays:
            raise InvoiceNotFound(f"this node has made no payment with hash {payment_hash}")
        pay = pays[-1]
        amount = _msat(pay.get("amount_msat"))
        sent = _msat(pay.get("amount_sent_msat"))
        return Payment(payment_hash=payment_hash, amount_msat=amount, fee_msat=max(0, sent - amount) if sent else 0,
                       state=_PAY_STATE.get(pay.get("status"), PaymentState.PENDING), preimage=pay.get("preimage"),
                       destination=pay.get("destination"), error=pay.get("error"))

    def updates(self) -> AsyncIterator[InvoiceUpdate]:
        """Paid plain invoices (waitanyinvoice) and hold-invoice changes (waitanyholdinvoice)
        from the moment of this call on."""
        try:
            # Take the starting indexes now, not at the first read: a payment made between
            # the call and the first read must be reported, one made before must not.
            start: asyncio.Future | None = asyncio.ensure_future(self._stream_start())
        except RuntimeError:  # no running loop: start at the first read
            start = None
        return self._updates(start)

    async def _stream_start(self) -> tuple[int, Any]:
        invoices = (await self._call("listinvoices")).get("invoices", [])
        pay_start = max((_msat(i.get("pay_index")) for i in invoices if i.get("pay_index")), default=0)
        dialect = await self.hold_dialect()
        if isinstance(dialect, OursDialect):
            return pay_start, int((await dialect.list_with_index()).get("lastindex", 0))
        return pay_start, {r["payment_hash"]: r["state"] for r in await dialect.list()}

    async def _updates(self, start: asyncio.Future | None) -> AsyncIterator[InvoiceUpdate]:
        queue: asyncio.Queue[InvoiceUpdate] = asyncio.Queue()
        pay_start, hold_start = await (start if start is not None else self._stream_start())
        dialect = await self.hold_dialect()
        tasks = [asyncio.create_task(self._follow("waitanyinvoice", "lastpay_index", pay_start,
                                                  "pay_index", _native_update, queue))]
        if isinstance(dialect, OursDialect):
            tasks.append(asyncio.create_task(self._follow(dialect.names["wait"], "lastindex", hold_start,
                                                          "updated_index", _hold_update, queue)))
        else:
            tasks.append(asyncio.create_task(self._poll_holds(dialect, hold_start, queue)))
        try:
            while True:
                yield await queue.get()
        finally:
            for task in tasks:
                task.cancel()

    async def _follow(self, method: str, param: str, index: int, index_field: str, convert: Any,
                      queue: asyncio.Queue) -> None:
        backoff = 0.5
        while not self._closed:
            try:
                item = await self._call(method, **{param: index, "timeout": self.wait_timeout_s})
            except LightningError as exc:
                if getattr(exc, "code", None) == TIMEOUT:
                    continue
                await asyncio.sleep(backoff)  # lightningd restarting: reconnect gently
                backoff = min(backoff * 2, 10.0)
                continue
            backoff = 0.5
            index = max(index, _msat(item.get(index_field)))
            update = convert(item)
            if update is not None:
                queue.put_nowait(update)

    async def _poll_holds(self, dialect: HoldDialect, seen: dict[str, str], queue: asyncio.Queue) -> None:
        """Plugins without a change stream: report each state a poll finds changed."""
        while not self._closed:
            await asyncio.sleep(self.hold_poll_s)
            try:
                records = await dialect.list()
            except LightningError:
                continue  # lightningd restarting: the next poll catches up
            for record in records:
                if seen.get(record["payment_hash"]) != record["state"]:
                    seen[record["payment_hash"]] = record["state"]
                    queue.put_nowait(_hold_update(record))

    async def close(self) -> None:
        self._closed = True
        self._executor.shutdown(wait=False, cancel_futures=True)


def _translate(method: str, error: Any) -> LightningError:
    error = error if isinstance(error, dict) else {"message": str(error)}
    code, message = error.get("code"), error.get("message", "")
    data = error.get("data") or {}
    if code in _PLUGIN_ERRORS:
        exc: LightningError = _PLUGIN_ERRORS[code](message)
    elif code in _PAY_ERRORS:
        exc = _PAY_ERRORS[code](message)
    elif method in ("pay", "keysend", "xpay") and (data.get("failcode") == 16399
                                                    or "incorrect_or_unknown_payment_details" in message.lower()):
        exc = PaymentRejected(f"the payee rejected the payment: {message}")
    elif method in ("pay", "keysend", "xpay") and "insufficient" in message.lower():
        exc = InsufficientBalance(message)
    elif method in ("pay", "keysend", "xpay"):
        exc = NoRoute(message) if "route" in message.lower() else LightningError(message)
    elif ("hold" in method or method == "help") and code == -32601:
        exc = BackendUnavailable("lightningd does not know our hold-invoice RPCs: start it with "
                                 "--plugin=<path to l402tui/lightning/cln_holdinvoice.py> (see docs/lightning.md)")
    else:
        exc = LightningError(f"{method}: {message} (code {code})")
    exc.code = code  # type: ignore[attr-defined]
    return exc


def _hold_invoice(r: dict) -> Invoice:
    return Invoice(payment_hash=r["payment_hash"], bolt11=r["bolt11"], amount_msat=_msat(r["amount_msat"]),
                   description=r.get("description", ""), state=InvoiceState(r["state"]),
                   created_at=float(r["created_at"]), expires_at=float(r["expires_at"]), is_hold=True,
                   preimage=r.get("preimage"), cltv_expiry=r.get("cltv_expiry"),
                   amount_received_msat=_msat(r.get("amount_received_msat")), settled_at=r.get("settled_at"))


def _native_invoice(i: dict) -> Invoice:
    state = _NATIVE_STATE.get(i.get("status"), InvoiceState.OPEN)
    expires_at = float(i.get("expires_at", 0))
    return Invoice(payment_hash=i["payment_hash"], bolt11=i.get("bolt11", ""), amount_msat=_msat(i.get("amount_msat")),
                   description=i.get("description", ""), state=state,
                   created_at=float(i.get("created_at", expires_at - 3600 if expires_at else time.time())),
                   expires_at=expires_at, preimage=i.get("payment_preimage"),
                   amount_received_msat=_msat(i.get("amount_received_msat")), settled_at=i.get("paid_at"))


def _held_natively(i: dict) -> bool:
    """A CLN invoice that daywalker90's plugin holds (ours are labelled): a hold invoice."""
    return str(i.get("label", "")).startswith(DAYWALKER_LABEL)


def _native_update(i: dict) -> InvoiceUpdate | None:
    if i.get("status") != "paid" or _held_natively(i):
        return None
    return InvoiceUpdate(payment_hash=i["payment_hash"], state=InvoiceState.SETTLED,
                         amount_msat=_msat(i.get("amount_received_msat")), is_hold=False,
                         at=float(i.get("paid_at") or time.time()), extra={"label": i.get("label")})


def _hold_update(r: dict) -> InvoiceUpdate:
    extra = {"updated_index": r.get("updated_index")}
    if r.get("reason"):
        extra["reason"] = r["reason"]
    return InvoiceUpdate(payment_hash=r["payment_hash"], state=InvoiceState(r["state"]),
                         amount_msat=_msat(r.get("amount_received_msat") or r.get("amount_msat")), is_hold=True,
                         at=time.time(), extra=extra)
