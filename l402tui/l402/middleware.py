"""aiohttp middleware that puts routes behind L402, plus per-IP and per-token rate limits.

A handler opts in with :func:`gated`.  Without a credential the client gets a
402 challenge: a fresh invoice from the Lightning backend and a token bound to
its payment hash.  With one, the token is verified for the route's capability
and the bounty in the URL.  As the L402 spec and Aperture do, a well-formed
credential that cannot open this route (another bounty or capability, expired,
revoked, forged, unpaid) gets a 402 with a *fresh* challenge, so a client that
caches one token per host can pay and go on; the body's ``refused`` says why.
Only a header that cannot be read at all gets a 401.

What unpaid challenges may store is bounded in total and expires (l402/unpaid.py): past
``max_unpaid_challenges`` outstanding offers a client gets 503 with a Retry-After.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from aiohttp import web

from l402tui.l402.ratelimit import RateLimiter
from l402tui.l402.tokens import Credential, TokenAuthority, TokenRefused, VerifiedToken, parse_authorization
from l402tui.l402.unpaid import DEFAULT_MAX_UNPAID, ChallengesFull, UnpaidChallenges
from l402tui.lightning.backend import LightningBackend
from l402tui.store import Store

TOKEN_KEY = "l402_token"  # request[TOKEN_KEY] -> VerifiedToken on gated routes


@dataclass(frozen=True)
class Gate:
    capability: str  # what the route needs
    price_key: str  # key into the prices table, e.g. "download_sats"
    grants: tuple[str, ...]  # capabilities of a token bought at this route
    bounty_param: str = "id"


def gated(capability: str, price_key: str, grants: tuple[str, ...] | None = None,
          bounty_param: str = "id") -> Callable:
    """Mark an aiohttp handler as L402-gated."""
    gate = Gate(capability, price_key, grants or (capability,), bounty_param)

    def mark(handler: Callable) -> Callable:
        handler.__l402_gate__ = gate  # type: ignore[attr-defined]
        return handler

    return mark


def gate_of(request: web.Request) -> Gate | None:
    route = request.match_info.route
    handler = getattr(route, "handler", None)
    return getattr(handler, "__l402_gate__", None)


# Called before an invoice is issued, so nobody pays for a bounty that does not
# exist or no longer takes submissions; raise to refuse (the app maps the error).
BeforeChallenge = Callable[[str, Gate], Awaitable[None]]


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(body, status=status, headers=headers)


def challenge_headers(macaroon: str, invoice: str) -> list[tuple[str, str]]:
    """WWW-Authenticate values, L402 first.

    ``macaroon=`` and ``invoice=`` come first and adjacent because popular clients
    match exactly that with a strict regex; spec clients read ``token=`` (same value).
    The LSAT variant follows for Aperture-era clients.
    """
    l402 = f'L402 macaroon="{macaroon}", invoice="{invoice}", version="0", token="{macaroon}"'
    lsat = f'LSAT macaroon="{macaroon}", invoice="{invoice}"'
    return [("WWW-Authenticate", l402), ("WWW-Authenticate", lsat)]


class L402Gate:
    def __init__(self, store: Store, backend: LightningBackend, authority: TokenAuthority, *,
                 prices_sats: dict[str, int], token_valid_s: int, per_token_per_minute: int,
                 per_ip_per_minute: int, invoice_expiry_s: int = 600, trust_forwarded_for: bool = False,
                 before_challenge: BeforeChallenge | None = None, exempt_prefixes: tuple[str, ...] = (),
                 max_unpaid_challenges: int = DEFAULT_MAX_UNPAID):
        self.store = store
        self.backend = backend
        self.authority = authority
        self.prices_sats = prices_sats
        self.token_valid_s = token_valid_s
        self.invoice_expiry_s = invoice_expiry_s
        self.token_limits = RateLimiter(per_token_per_minute)
        self.ip_limits = RateLimiter(per_ip_per_minute)
        self.trust_forwarded_for = trust_forwarded_for
        self.before_challenge = before_challenge
        self.exempt_prefixes = exempt_prefixes
        self.unpaid = UnpaidChallenges(store, backend, max_unpaid=max_unpaid_challenges)

    def client_ip(self, request: web.Request) -> str:
        if self.trust_forwarded_for:
            # Only behind a reverse proxy we run: it appends the real peer last.
            forwarded = request.headers.get("X-Forwarded-For", "")
            if forwarded:
                return forwarded.split(",")[-1].strip()
        return request.remote or "unknown"

    @web.middleware
    async def middleware(self, request: web.Request, handler: Callable) -> web.StreamResponse:
        if not (self.exempt_prefixes and request.path.startswith(self.exempt_prefixes)):
            wait = self.ip_limits.hit("ip:" + self.client_ip(request))
            if wait is not None:
                return _too_many(wait, "too many requests from your address")
        gate = gate_of(request)
        if gate is None:
            return await handler(request)
        bounty_id = request.match_info.get(gate.bounty_param)
        try:
            credential = read_credential(request)
            if credential is None:
                return await self.challenge(request, gate, bounty_id)
            token = await self.authority.verify(credential, capability=gate.capability, bounty_id=bounty_id)
        except TokenRefused as exc:
            if exc.malformed:
                return unauthorized(exc)
            return await self.challenge(request, gate, bounty_id, refused=exc)
        wait = self.token_limits.hit("token:" + token.token_id)
        if wait is not None:
            return _too_many(wait, "too many requests with this token")
        request[TOKEN_KEY] = token
        return await handler(request)

    def price_msat(self, gate: Gate) -> int:
        try:
            return int(self.prices_sats[gate.price_key]) * 1000
        except KeyError:
            raise RuntimeError(f"no price configured for {gate.price_key!r}; set prices.{gate.price_key}") from None

    async def challenge(self, request: web.Request, gate: Gate, bounty_id: str | None,
                        refused: TokenRefused | None = None) -> web.Response:
        if bounty_id is None:
            raise RuntimeError("a gated route needs a bounty id in its path")
        if self.before_challenge is not None:
            await self.before_challenge(bounty_id, gate)
        amount_msat = self.price_msat(gate)
        try:
            async with self.unpaid.admit():
                invoice = await self.backend.create_invoice(
                    amount_msat, f"l402tui: {'+'.join(gate.grants)} for bounty {bounty_id}", self.invoice_expiry_s)
                valid_until = int(time.time() + self.token_valid_s)
                async with self.store.transaction() as txn:
                    minted = await self.authority.mint(txn, invoice.payment_hash, bounty_id, gate.grants,
                                                       valid_until)
                    await txn.insert("invoices", {
                        "payment_hash": invoice.payment_hash, "kind": "l402", "bolt11": invoice.bolt11,
                        "amount_msat": amount_msat, "is_hold": 0, "status": "OPEN", "bounty_id": bounty_id,
                        "expires_at": invoice.expires_at, "created_at": time.time(), "updated_at": time.time(),
                    })
        except ChallengesFull as full:
            return _busy(full.retry_after_s)
        headers = challenge_headers(minted.macaroon_b64, invoice.bolt11)
        body = {
            "error": "payment_required",
            "message": f"pay the invoice ({amount_msat // 1000} sats), then retry with "
                       "'Authorization: L402 <macaroon>:<preimage>'",
            "macaroon": minted.macaroon_b64, "token": minted.macaroon_b64, "invoice": invoice.bolt11,
            "payment_hash": invoice.payment_hash, "price_sats": amount_msat // 1000,
            "capabilities": list(gate.grants), "bounty_id": bounty_id, "valid_until": valid_until,
        }
        if refused is not None:
            body["reason"] = refused.reason
            body["message"] = f"{refused.message}. Or {body['message']} to get a token for this route"
            body["refused"] = {"reason": refused.reason, "message": refused.message}
        response = web.json_response(body, status=402)
        for name, value in headers:
            response.headers.add(name, value)
        return response


def read_credential(request: web.Request) -> Credential | None:
    """The request's L402 credential; None without one.  Two Authorization headers are
    malformed: which one counts would be a guess."""
    values = request.headers.getall("Authorization", [])
    if len(values) > 1:
        raise TokenRefused("malformed", "send one Authorization header, not several")
    return parse_authorization(values[0] if values else None)


def unauthorized(exc: TokenRefused) -> web.Response:
    """A 401 naming the failed check (a malformed header, or a credential a new
    token could not replace, such as the submitting token on a claim)."""
    return _json(401, {"error": "unauthorized", "reason": exc.reason, "message": exc.message},
                 {"WWW-Authenticate": f'L402 error="{exc.reason}"'})


def _too_many(wait_s: int, message: str) -> web.Response:
    return _json(429, {"error": "rate_limited", "message": f"{message}; retry in {wait_s} s",
                       "retry_after_s": wait_s}, {"Retry-After": str(wait_s)})


def _busy(wait_s: int) -> web.Response:
    return _json(503, {"error": "challenges_full", "message": "too many payment challenges are waiting to be paid; "
                       f"retry in {wait_s} s (a token you already hold still works)", "retry_after_s": wait_s},
                 {"Retry-After": str(wait_s)})


def token_of(request: web.Request) -> VerifiedToken:
    """The verified token of a gated request (set by the middleware)."""
    return request[TOKEN_KEY]
