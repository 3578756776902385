"""A wallet for clients that only speak to a Lightning node over HTTP (Lightning Labs'
l402sdk): Core Lightning's REST interface (``clnrest``) in front of a sim node.

clnrest maps ``POST /v1/<method>`` with a JSON body to lightningd's RPC of that name and
answers its result; the caller's rune comes in the ``Rune`` header.  l402sdk's CLN REST
backend sends ``/v1/pay`` with ``{"bolt11", "maxfee": "<n>msat", "retry_for"}`` and reads
``payment_preimage``, ``payment_hash``, ``amount_msat``, ``amount_sent_msat`` and ``status``.
A real clnrest cannot run here (it is a Rust plugin, not in ../shared/cln), so this serves
that much, paying from the sim node given.
"""

from __future__ import annotations

import re
import secrets
import time

from aiohttp import web

from l402tui.lightning.backend import LightningBackend, LightningError

_MSAT = re.compile(r"^(\d+)(msat)?$")


def _msat(value) -> int | None:
    """CLN's msat fields: an integer, or a string with the ``msat`` suffix."""
    if value is None:
        return None
    match = _MSAT.match(str(value))
    if match is None:
        raise ValueError(f"bad msat amount {value!r}")
    return int(match.group(1))


def clnrest_app(node: LightningBackend, rune: str) -> web.Application:
    """The app; every payment it makes is appended to ``app["paid"]`` as the request it answered."""

    async def pay(request: web.Request) -> web.Response:
        if not secrets.compare_digest(request.headers.get("Rune", ""), rune):
            return web.json_response({"code": 1501, "message": "Not authorized: rune missing or wrong"},
                                     status=401)
        params = await request.json()
        try:
            payment = await node.pay(params["bolt11"], max_fee_msat=_msat(params.get("maxfee")),
                                     timeout_s=float(params.get("retry_for", 60)))
        except LightningError as exc:
            return web.json_response({"code": 210, "message": str(exc)}, status=500)
        request.app["paid"].append(params)
        return web.json_response({
            "destination": payment.destination, "payment_hash": payment.payment_hash,
            "created_at": time.time(), "parts": 1, "amount_msat": payment.amount_msat,
            "amount_sent_msat": payment.amount_msat + payment.fee_msat,
            "payment_preimage": payment.preimage, "status": payment.state.value.lower()})

    app = web.Application()
    app["paid"] = []
    app.router.add_post("/v1/pay", pay)
    return app
