"""The hold-invoice plugins a Core Lightning node may run, behind one adapter.

``detect`` reads lightningd's ``help`` and picks, in this order:

- ``l402tui-prefixed``: ours loaded as ``cln_holdinvoice_prefixed.py``, methods
  ``l402tui-hold-*`` (never collides with another hold plugin);
- ``l402tui``: ours, methods ``holdinvoice`` … ``waitanyholdinvoice``;
- ``boltz``: Boltz's ``hold`` (``holdinvoice payment_hash amount``, ``settleholdinvoice
  preimage``, ``cancelholdinvoice payment_hash``, ``listholdinvoices [payment_hash]``);
- ``daywalker``: daywalker90's ``holdinvoice`` (a wrapper of ``invoice``: the node is
  given the preimage; ``holdinvoicesettle``/``holdinvoicecancel``/``holdinvoicelookup``
  by ``payment_hash``).

Every dialect answers records in our plugin's shape (see ``cln_holdinvoice._public``)
so the backend converts one thing.  Only ours has a change stream
(``waitanyholdinvoice``); the others are polled.  Both other plugins answer some errors
as a *result* holding ``code`` and ``message``: those are raised like errors.
"""

from __future__ import annotations

import hashlib
import os
import time
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable

from l402tui.lightning.backend import (InvalidRequest, InvalidState, InvoiceNotFound, LightningError,
                                       WrongPreimage)

Call = Callable[..., Awaitable[Any]]
DAYWALKER_LABEL = "l402tui-hold-"  # our labels on daywalker90's invoices, to list ours only

OURS = {"create": "holdinvoice", "settle": "holdinvoicesettle", "cancel": "holdinvoicecancel",
        "lookup": "holdinvoicelookup", "list": "listholdinvoices", "wait": "waitanyholdinvoice"}
OURS_PREFIXED = {"create": "l402tui-hold-invoice", "settle": "l402tui-hold-settle",
                 "cancel": "l402tui-hold-cancel", "lookup": "l402tui-hold-lookup",
                 "list": "l402tui-hold-list", "wait": "l402tui-hold-waitany"}


def msat(value: Any) -> int:
    """An amount field of lightningd as int msat (some versions write ``"123msat"``)."""
    return int(str(value).removesuffix("msat")) if value is not None else 0


def sha256_hex(preimage: str) -> str:
    return hashlib.sha256(bytes.fromhex(preimage)).hexdigest()


def _checked(result: Any, method: str) -> Any:
    """Raise an error that came back as a result ({"code", "message"} and nothing else)."""
    if isinstance(result, dict) and {"code", "message"} <= result.keys() and len(result) <= 3:
        message = str(result["message"])
        lowered = message.lower()
        if "not found" in lowered or "does not exist" in lowered:
            exc: LightningError = InvoiceNotFound(f"{method}: {message}")
        elif "wrong state" in lowered or "state" in lowered and "transition" in lowered:
            exc = InvalidState(f"{method}: {message}")
        else:
            exc = InvalidRequest(f"{method}: {message}")
        exc.code = result["code"]  # type: ignore[attr-defined]
        raise exc
    return result


def _verify(preimage: str, payment_hash: str | None) -> str:
    from l402tui.lightning._bolt11 import check_hex32

    actual = sha256_hex(check_hex32(preimage, "preimage"))
    if payment_hash is not None and check_hex32(payment_hash, "payment_hash") != actual:
        raise WrongPreimage(f"sha256(preimage) is {actual}, not the payment hash {payment_hash}: this is not "
                            "the preimage of that hold invoice; nothing was settled")
    return actual


class HoldDialect:
    """One plugin's RPCs.  ``call(method, **params)`` is the backend's RPC call."""

    name = "abstract"
    streams = False  # True: waitany-style change stream; else the backend polls ``list``
    keeps_preimage_off_node = True  # False: the plugin must be given the preimage up front

    def __init__(self, call: Call) -> None:
        self.call = call

    async def create(self, payment_hash: str, amount_msat: int, description: str, expiry_s: int,
                     cltv: int, preimage: str | None) -> dict: ...

    async def settle(self, preimage: str, payment_hash: str | None) -> dict: ...

    async def cancel(self, payment_hash: str) -> dict: ...

    async def lookup(self, payment_hash: str) -> dict: ...

    async def list(self) -> list[dict]: ...


class OursDialect(HoldDialect):
    streams = True

    def __init__(self, call: Call, names: dict[str, str] = OURS) -> None:
        super().__init__(call)
        self.names = names
        self.name = "l402tui" if names is OURS else "l402tui-prefixed"

    async def create(self, payment_hash, amount_msat, description, expiry_s, cltv, preimage):
        return await self.call(self.names["create"], payment_hash=payment_hash, amount_msat=amount_msat,
                               description=description, expiry=expiry_s, cltv=cltv)

    async def settle(self, preimage, payment_hash):
        return await self.call(self.names["settle"], preimage=preimage, payment_hash=payment_hash)

    async def cancel(self, payment_hash):
        return await self.call(self.names["cancel"], payment_hash=payment_hash)

    async def lookup(self, payment_hash):
        return await self.call(self.names["lookup"], payment_hash=payment_hash)

    async def list(self):
        return (await self.call(self.names["list"])).get("holdinvoices", [])

    async def list_with_index(self) -> dict:
        return await self.call(self.names["list"])


def _decoded(bolt11: str):
    from l402tui.lightning._bolt11 import decode_invoice

    return decode_invoice(bolt11)


def _timestamp(value: Any) -> float | None:
    """Boltz writes chrono NaiveDateTime (UTC, ISO without zone); older versions unix seconds."""
    if value in (None, ""):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    return datetime.fromisoformat(str(value)).replace(tzinfo=timezone.utc).timestamp()


class BoltzDialect(HoldDialect):
    """Boltz's ``hold``: amount and hash only; expiry, CLTV and description are its own."""

    name = "boltz"
    _STATES = {"unpaid": "OPEN", "accepted": "ACCEPTED", "paid": "SETTLED", "cancelled": "CANCELED"}

    async def create(self, payment_hash, amount_msat, description, expiry_s, cltv, preimage):
        _checked(await self.call("holdinvoice", payment_hash=payment_hash, amount=amount_msat), "holdinvoice")
        return await self.lookup(payment_hash)

    async def settle(self, preimage, payment_hash):
        actual = _verify(preimage, payment_hash)
        record = await self.lookup(actual)
        if record["state"] != "SETTLED":
            if record["state"] != "ACCEPTED":
                raise InvalidState(f"cannot settle hold invoice {actual}: it is {record['state']}")
            _checked(await self.call("settleholdinvoice", preimage=preimage), "settleholdinvoice")
        return {**await self.lookup(actual), "preimage": preimage}

    async def cancel(self, payment_hash):
        record = await self.lookup(payment_hash)
        if record["state"] == "SETTLED":
            raise InvalidState(f"hold invoice {payment_hash} is already settled; it cannot be cancelled")
        if record["state"] != "CANCELED":
            _checked(await self.call("cancelholdinvoice", payment_hash=payment_hash), "cancelholdinvoice")
        return await self.lookup(payment_hash)

    async def lookup(self, payment_hash):
        found = _checked(await self.call("listholdinvoices", payment_hash=payment_hash), "listholdinvoices")
        rows = found.get("holdinvoices", [])
        if not rows:
            raise InvoiceNotFound(f"no hold invoice with payment hash {payment_hash}")
        return self._record(rows[0])

    async def list(self):
        return [self._record(r) for r in
                _checked(await self.call("listholdinvoices"), "listholdinvoices").get("holdinvoices", [])]

    def _record(self, row: dict) -> dict:
        bolt11 = row.get("invoice") or row.get("bolt11")
        inv = _decoded(bolt11)
        htlcs = [h for h in row.get("htlcs", []) if h.get("state") in ("accepted", "paid")]
        expiries = [h["cltv_expiry"] for h in htlcs if h.get("cltv_expiry") is not None]
        state = self._STATES.get(row.get("state"), "OPEN")
        if state == "OPEN" and time.time() >= inv.expires_at:
            state = "EXPIRED"
        return {"payment_hash": row["payment_hash"], "bolt11": bolt11, "amount_msat": inv.amount_msat,
                "description": inv.description, "state": state,
                "created_at": _timestamp(row.get("created_at")) or inv.timestamp, "expires_at": inv.expires_at,
                "preimage": row.get("preimage") or row.get("payment_preimage"),
                "cltv_expiry": min(expiries) if expiries else None,
                "amount_received_msat": sum(int(h.get("msat", 0)) for h in htlcs),
                "settled_at": _timestamp(row.get("settled_at"))}


class DaywalkerDialect(HoldDialect):
    """daywalker90's ``holdinvoice``: a CLN invoice the plugin holds; it needs the preimage."""

    name = "daywalker"
    keeps_preimage_off_node = False
    _DONE = ("SETTLED", "CANCELED")

    async def create(self, payment_hash, amount_msat, description, expiry_s, cltv, preimage):
        if preimage is None or sha256_hex(preimage) != payment_hash:
            raise InvalidRequest("daywalker90's holdinvoice plugin makes the invoice from its preimage, so "
                                 "l402tui would have to hand the preimage to lightningd; load l402tui's plugin "
                                 "instead (cln_holdinvoice_prefixed.py runs beside it) or pass preimage=")
        label = f"{DAYWALKER_LABEL}{payment_hash[:16]}-{os.urandom(4).hex()}"
        _checked(await self.call("holdinvoice", amount_msat=amount_msat, label=label, description=description,
                                 expiry=expiry_s, preimage=preimage, cltv=cltv), "holdinvoice")
        return await self.lookup(payment_hash)

    async def settle(self, preimage, payment_hash):
        actual = _verify(preimage, payment_hash)
        record = await self.lookup(actual)
        if record["state"] != "SETTLED":
            if record["state"] != "ACCEPTED":
                raise InvalidState(f"cannot settle hold invoice {actual}: it is {record['state']}")
            _checked(await self.call("holdinvoicesettle", payment_hash=actual), "holdinvoicesettle")
        return await self.lookup(actual)

    async def cancel(self, payment_hash):
        record = await self.lookup(payment_hash)
        if record["state"] == "SETTLED":
            raise InvalidState(f"hold invoice {payment_hash} is already settled; it cannot be cancelled")
        if record["state"] not in ("CANCELED", "EXPIRED"):
            _checked(await self.call("holdinvoicecancel", payment_hash=payment_hash), "holdinvoicecancel")
        return await self.lookup(payment_hash)

    async def lookup(self, payment_hash):
        invoices = (await self.call("listinvoices", payment_hash=payment_hash)).get("invoices", [])
        if not invoices:
            raise InvoiceNotFound(f"no hold invoice with payment hash {payment_hash}")
        hold = _checked(await self.call("holdinvoicelookup", payment_hash=payment_hash), "holdinvoicelookup")
        return self._record(invoices[0], hold)

    async def list(self):
        ours = [i for i in (await self.call("listinvoices")).get("invoices", [])
                if str(i.get("label", "")).startswith(DAYWALKER_LABEL)]
        return [self._record(i, _checked(await self.call("holdinvoicelookup", payment_hash=i["payment_hash"]),
                                         "holdinvoicelookup")) for i in ours]

    def _record(self, inv: dict, hold: dict) -> dict:
        state = hold.get("state", "OPEN")
        if state == "OPEN" and inv.get("status") == "expired":
            state = "EXPIRED"
        amount = msat(inv.get("amount_msat"))
        expires_at = float(inv.get("expires_at", 0))
        return {"payment_hash": inv["payment_hash"], "bolt11": inv.get("bolt11", ""), "amount_msat": amount,
                "description": inv.get("description", ""), "state": state,
                "created_at": float(inv.get("created_at") or _decoded(inv["bolt11"]).timestamp),
                "expires_at": expires_at,
                "preimage": inv.get("payment_preimage") if state == "SETTLED" else None,
                "cltv_expiry": hold.get("htlc_expiry"),
                "amount_received_msat": msat(inv.get("amount_received_msat")) if state == "SETTLED"
                else (amount if state == "ACCEPTED" else 0),
                "settled_at": inv.get("paid_at")}


async def detect(call: Call) -> HoldDialect:
    """The dialect of the hold plugin this node runs; BackendUnavailable-style error if none."""
    from l402tui.lightning.backend import BackendUnavailable

    commands = {str(c.get("command", "")).split(" ")[0] for c in (await call("help")).get("help", [])}
    if OURS_PREFIXED["create"] in commands:
        return OursDialect(call, OURS_PREFIXED)
    if OURS["wait"] in commands:
        return OursDialect(call, OURS)
    if {"settleholdinvoice", "cancelholdinvoice", "holdinvoice"} <= commands:
        return BoltzDialect(call)
    if {"holdinvoice", "holdinvoicesettle", "holdinvoicelookup"} <= commands:
        return DaywalkerDialect(call)
    raise BackendUnavailable("lightningd runs no hold-invoice plugin l402tui knows: start it with "
                             "--plugin=<path to l402tui/lightning/cln_holdinvoice.py> (or "
                             "cln_holdinvoice_prefixed.py beside another hold plugin; see docs/lightning.md)")
