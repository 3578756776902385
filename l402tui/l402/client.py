"""An aiohttp client that meets a 402, pays within a spending cap, caches the token, retries.

Used by the agent (``l402tui agent``) and the tests.  It pays through any
:class:`LightningBackend`, checks the invoice before paying (amount within the
cap, the token bound to the invoice's payment hash) and the preimage after.
Answers come back as :class:`Response`; ``Response.error()`` is the
:mod:`l402tui.errors` class of a refusal, and a coordinator that does not answer at
all raises :class:`~l402tui.errors.Unreachable`.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import asyncio

import aiohttp

from l402tui.errors import L402TuiError, PaymentRequired, Unreachable, from_response
from l402tui.lightning.backend import LightningBackend, PaymentState

_PARAM_RE = re.compile(r'(\w+)="([^"]*)"')
# 401 reasons after which buying a fresh token can help.
_REBUY = {"missing_capability", "expired", "revoked", "wrong_bounty"}


class L402ClientError(PaymentRequired):
    """A 402 this client would not or could not pay (the message says why)."""

    code = "payment_not_made"


class SpendingCapExceeded(L402ClientError):
    code = "spending_cap"


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    paid_sats: int = 0

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def error(self, context: str = "") -> L402TuiError:
        """The error this (>= 400) answer stands for, its message prefixed with ``context``."""
        try:
            body: Any = self.json()
        except ValueError:
            body = self.body
        return from_response(self.status, body, context=context, retry_after=self.headers.get("Retry-After"))


@dataclass
class Challenge:
    macaroon: str
    invoice: str


def parse_challenge(values: list[str]) -> Challenge | None:
    """The L402 (or LSAT) challenge among WWW-Authenticate values; token= preferred over macaroon=."""
    for scheme in ("L402", "LSAT"):
        for value in values:
            if not value.strip().upper().startswith(scheme + " "):
                continue
            params = dict(_PARAM_RE.findall(value))
            mac = params.get("token") or params.get("macaroon")
            if mac and params.get("invoice"):
                return Challenge(mac, params["invoice"])
    return None


def _payment_hash_of_macaroon(macaroon_b64: str) -> str | None:
    from pymacaroons import Macaroon

    try:
        identifier = Macaroon.deserialize(macaroon_b64).identifier_bytes
    except Exception:  # noqa: BLE001 - a foreign token format: skip the binding check
        return None
    return identifier[2:34].hex() if len(identifier) == 66 else None


@dataclass
class L402Client:
    wallet: LightningBackend
    spend_cap_sats: int
    max_fee_msat: int | None = None
    session: aiohttp.ClientSession | None = None
    spent_msat: int = 0
    tokens: dict[tuple[str, str], str] = field(default_factory=dict)  # (origin, path) -> "mac:preimage"

    async def __aenter__(self) -> "L402Client":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def close(self) -> None:
        if self.session is not None and not self.session.closed:
            await self.session.close()

    def _session(self) -> aiohttp.ClientSession:
        if self.session is None or self.session.closed:
            self.session = aiohttp.ClientSession()
        return self.session

    async def _send(self, method: str, url: str, credential: str | None, **kwargs: Any) -> tuple[Response, list[str]]:
        headers = dict(kwargs.pop("headers", None) or {})
        if credential:
            headers["Authorization"] = f"L402 {credential}"
        try:
            async with self._session().request(method, url, headers=headers, **kwargs) as r:
                body = await r.read()
                return Response(r.status, dict(r.headers), body), r.headers.getall("WWW-Authenticate", [])
        except (aiohttp.ClientConnectionError, asyncio.TimeoutError) as exc:
            origin = "{0.scheme}://{0.netloc}".format(urlsplit(url))
            raise Unreachable(f"cannot reach {origin} ({exc or type(exc).__name__})") from None

    async def request(self, method: str, url: str, **kwargs: Any) -> Response:
        parts = urlsplit(url)
        key = (f"{parts.scheme}://{parts.netloc}", parts.path)
        cached = self.tokens.get(key)
        response = None
        if cached:
            response, challenges = await self._send(method, url, cached, **dict(kwargs))
            if response.status == 401 and _reason(response) in _REBUY:
                del self.tokens[key]  # an older server that refuses without a challenge
                response = None
            elif response.status != 402:
                return response
            else:
                del self.tokens[key]  # the 402 carries a fresh challenge for this route
        if response is None:
            response, challenges = await self._send(method, url, None, **dict(kwargs))
        if response.status != 402:
            return response
        challenge = parse_challenge(challenges)
        if challenge is None:
            raise L402ClientError(f"{url} answered 402 without an L402 challenge")
        preimage, paid_msat = await self._pay(challenge)
        credential = f"{challenge.macaroon}:{preimage}"
        self.tokens[key] = credential
        response, _ = await self._send(method, url, credential, **dict(kwargs))
        response.paid_sats = paid_msat // 1000
        return response

    async def get(self, url: str, **kwargs: Any) -> Response:
        return await self.request("GET", url, **kwargs)

    async def post(self, url: str, **kwargs: Any) -> Response:
        return await self.request("POST", url, **kwargs)

    async def _pay(self, challenge: Challenge) -> tuple[str, int]:
        from bolt11 import decode as bolt11_decode

        try:
            decoded = bolt11_decode(challenge.invoice)
        except Exception as exc:  # noqa: BLE001 - the server sent something unpayable
            raise L402ClientError(f"the challenge's invoice cannot be decoded: {exc}") from None
        amount = decoded.amount_msat
        if not amount:
            raise L402ClientError("the challenge's invoice has no amount; refusing to pay a blank cheque")
        if self.spent_msat + amount > self.spend_cap_sats * 1000:
            raise SpendingCapExceeded(
                f"paying {amount // 1000} sats would exceed the spending cap of {self.spend_cap_sats} sats "
                f"({self.spent_msat // 1000} spent); raise agent.spend_cap_sats to continue")
        bound = _payment_hash_of_macaroon(challenge.macaroon)
        if bound is not None and bound != decoded.payment_hash:
            raise L402ClientError("the token is not bound to the invoice's payment hash; not paying")
        payment = await self.wallet.pay(challenge.invoice, max_fee_msat=self.max_fee_msat)
        if payment.state is not PaymentState.COMPLETE or not payment.preimage:
            raise L402ClientError(f"the payment did not complete ({payment.state.value}: {payment.error})")
        if hashlib.sha256(bytes.fromhex(payment.preimage)).hexdigest() != decoded.payment_hash:
            raise L402ClientError("the wallet returned a preimage that does not match the invoice")
        self.spent_msat += amount + payment.fee_msat
        return payment.preimage, amount


def _reason(response: Response) -> str | None:
    try:
        return response.json().get("reason")
    except (ValueError, AttributeError):
        return None
