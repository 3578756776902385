"""Fake lightningd nodes running another hold-invoice plugin, as each documents its RPCs.

Neither plugin can run here (both are Rust binaries), so each fake serves exactly the
surface our adapter relies on, with the shapes their sources give:

- Boltz ``hold``: ``holdinvoice payment_hash amount`` -> ``{"bolt11"}``;
  ``listholdinvoices [payment_hash] [invoice]`` -> ``{"holdinvoices": [{id, payment_hash,
  preimage?, invoice, state: unpaid|accepted|paid|cancelled, created_at (ISO, UTC),
  settled_at?, htlcs: [{id, invoice_id, state, scid, channel_id, msat, cltv_expiry,
  created_at}]}]}``; ``settleholdinvoice preimage`` and ``cancelholdinvoice payment_hash``
  -> ``{}``; errors are JSON-RPC errors.
- daywalker90 ``holdinvoice``: ``holdinvoice amount_msat label description [expiry]
  [fallbacks] [preimage] cltv [deschashonly]`` (lightningd's ``invoice`` result);
  ``holdinvoicesettle|holdinvoicecancel payment_hash`` -> ``{"state"}``;
  ``holdinvoicelookup payment_hash`` -> ``{"state", "htlc_expiry"?}``; its errors come
  back as *results* ``{"code", "message"}``.
HTLCs paying a hold invoice are held by the node until settled or cancelled.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from datetime import datetime, timezone

from l402tui.lightning._bolt11 import encode_invoice
from tests.lightning.fake_datastore import RpcFail
from tests.lightning.fake_lightningd import FakeLightningd


def _iso_now() -> str:
    return datetime.now(timezone.utc).replace(tzinfo=None).isoformat()


class HoldingNode(FakeLightningd):
    """A fake node whose hold plugin keeps HTLCs in ``self.held`` until told."""

    dialect = "abstract"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, plugin=None, **kwargs)
        self.holds: dict[str, dict] = {}
        self.held: dict[str, list[asyncio.Future]] = {}

    async def dispatch(self, method: str, params: dict) -> dict:
        handler = getattr(self, "hold_" + method.replace("-", "_"), None)
        if handler is not None:
            return await handler(**params)
        return await super().dispatch(method, params)

    async def rpc_help(self, **_) -> dict:
        own = (await super().rpc_help())["help"]
        return {"help": own + [{"command": m[5:]} for m in sorted(dir(self)) if m.startswith("hold_")]}

    async def receive_htlc(self, payment_hash, amount, cltv_expiry, *, payment_secret, keysend_preimage, scid,
                           total_msat):
        hold = self.holds.get(payment_hash)
        if hold is None:
            return await super().receive_htlc(payment_hash, amount, cltv_expiry, payment_secret=payment_secret,
                                              keysend_preimage=keysend_preimage, scid=scid,
                                              total_msat=total_msat)
        fail = {"result": "fail", "failure_message": f"400f{amount:016x}{self.net.height:08x}"}
        if self._state(hold) != "open" or amount < hold["amount_msat"] or payment_secret != hold["secret"]:
            return fail
        answer: asyncio.Future = asyncio.get_running_loop().create_future()
        self.held.setdefault(payment_hash, []).append(answer)
        self._accept(hold, amount, cltv_expiry, scid)
        return await answer

    def _release(self, payment_hash: str, answer: dict) -> None:
        for fut in self.held.pop(payment_hash, []):
            if not fut.done():
                fut.set_result(answer)


class BoltzHoldNode(HoldingNode):
    dialect = "boltz"

    def _state(self, hold: dict) -> str:
        return "open" if hold["state"] == "unpaid" else hold["state"]

    def _accept(self, hold, amount, cltv_expiry, scid) -> None:
        hold["htlcs"].append({"id": len(hold["htlcs"]) + 1, "invoice_id": hold["id"], "state": "accepted",
                              "scid": scid, "channel_id": 0, "msat": amount, "cltv_expiry": cltv_expiry,
                              "created_at": _iso_now()})
        hold["state"] = "accepted"

    async def hold_holdinvoice(self, payment_hash: str, amount: int) -> dict:
        if payment_hash in self.holds:
            raise RpcFail(-32600, "UNIQUE constraint failed: invoices.payment_hash")
        secret = os.urandom(32).hex()
        bolt11 = encode_invoice(key=self.key, network="regtest", payment_hash=payment_hash, payment_secret=secret,
                                amount_msat=int(amount), description="", expiry_s=3600, cltv_delta=80,
                                timestamp=int(time.time()))
        self.holds[payment_hash] = {"id": len(self.holds) + 1, "payment_hash": payment_hash, "invoice": bolt11,
                                    "state": "unpaid", "created_at": _iso_now(), "htlcs": [],
                                    "amount_msat": int(amount), "secret": secret}
        return {"bolt11": bolt11}

    async def hold_listholdinvoices(self, payment_hash: str | None = None, invoice: str | None = None) -> dict:
        rows = [h for h in self.holds.values() if payment_hash in (None, h["payment_hash"])]
        return {"holdinvoices": [{k: v for k, v in h.items() if k not in ("amount_msat", "secret")} for h in rows]}

    async def hold_settleholdinvoice(self, preimage: str) -> dict:
        payment_hash = hashlib.sha256(bytes.fromhex(preimage)).hexdigest()
        hold = self.holds.get(payment_hash)
        if hold is None:
            raise RpcFail(-32600, "hold invoice with that payment hash does not exist")
        if hold["state"] != "accepted":
            raise RpcFail(-32600, f"invoice state transition ({hold['state']} -> paid)")
        hold.update(state="paid", preimage=preimage, settled_at=_iso_now())
        for htlc in hold["htlcs"]:
            htlc["state"] = "paid"
        self._release(payment_hash, {"result": "resolve", "payment_key": preimage})
        return {}

    async def hold_cancelholdinvoice(self, payment_hash: str) -> dict:
        hold = self.holds.get(payment_hash)
        if hold is None:
            raise RpcFail(-32600, "hold invoice with that payment hash does not exist")
        if hold["state"] == "paid":
            raise RpcFail(-32600, "state paid is final")
        hold["state"] = "cancelled"
        for htlc in hold["htlcs"]:
            htlc["state"] = "cancelled"
        amount = sum(h["msat"] for h in hold["htlcs"])
        self._release(payment_hash, {"result": "fail",
                                     "failure_message": f"400f{amount:016x}{self.net.height:08x}"})
        return {}


class DaywalkerHoldNode(HoldingNode):
    dialect = "daywalker"
    _ARGS = ("amount_msat", "label", "description", "expiry", "fallbacks", "preimage", "cltv", "deschashonly")

    def _state(self, hold: dict) -> str:
        return hold["state"].lower()

    def _accept(self, hold, amount, cltv_expiry, scid) -> None:
        hold.update(state="ACCEPTED", htlc_expiry=cltv_expiry)

    async def hold_holdinvoice(self, **params) -> dict:
        for key in params:
            if key not in self._ARGS:
                return {"code": -1, "message": f"Invalid argument: '{key}'"}
        for key in ("amount_msat", "label", "description", "cltv"):
            if key not in params:
                return {"code": -32602, "message": f"missing required parameter: {key}"}
        made = await self.rpc_invoice(params["amount_msat"], params["label"], params["description"],
                                      expiry=params.get("expiry", 604800), preimage=params.get("preimage"))
        self.holds[made["payment_hash"]] = {"state": "OPEN", "amount_msat": int(params["amount_msat"]),
                                            "secret": made["payment_secret"]}
        return made

    def _find(self, payment_hash: str) -> dict | None:
        return self.holds.get(payment_hash)

    async def hold_holdinvoicesettle(self, payment_hash: str) -> dict:
        hold = self._find(payment_hash)
        if hold is None:
            return {"code": -32602, "message": f"payment_hash '{payment_hash}' not found"}
        if hold["state"] != "ACCEPTED":
            return {"code": -32602, "message": f"Holdinvoice is in wrong state: '{hold['state']}'"}
        hold["state"] = "SETTLED"
        hold.pop("htlc_expiry", None)
        inv = self.invoices[payment_hash]
        async with self.invoice_changed:
            self.pay_index += 1
            inv.update(status="paid", pay_index=self.pay_index, amount_received_msat=hold["amount_msat"],
                       paid_at=int(time.time()))
            self.invoice_changed.notify_all()
        self._release(payment_hash, {"result": "resolve", "payment_key": inv["_preimage"]})
        return {"state": "SETTLED"}

    async def hold_holdinvoicecancel(self, payment_hash: str) -> dict:
        hold = self._find(payment_hash)
        if hold is None:
            return {"code": -32602, "message": f"payment_hash '{payment_hash}' not found"}
        if hold["state"] not in ("OPEN", "ACCEPTED"):
            return {"code": -32602, "message": f"Holdinvoice is in wrong state: '{hold['state']}'"}
        hold["state"] = "CANCELED"
        hold.pop("htlc_expiry", None)
        self._release(payment_hash, {"result": "fail", "failure_message": "400f"})
        return {"state": "CANCELED"}

    async def hold_holdinvoicelookup(self, payment_hash: str) -> dict:
        hold = self._find(payment_hash)
        if hold is None:
            return {"code": -32602, "message": f"payment_hash '{payment_hash}' not found"}
        return {"state": hold["state"], **({"htlc_expiry": hold["htlc_expiry"]} if "htlc_expiry" in hold else {})}
