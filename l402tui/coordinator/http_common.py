"""What the coordinator's HTTP handlers share: app keys and request helpers."""

from __future__ import annotations

import asyncio
import json
import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from aiohttp import web

from l402tui.coordinator.admin import AdminAuth
from l402tui.coordinator.errors import Invalid
from l402tui.coordinator.read_cache import ReadCache
from l402tui.coordinator.service import Coordinator
from l402tui.l402.middleware import L402Gate

MAX_UPLOAD = 64 * 1024 * 1024  # the largest request body (an admin's .tar.gz upload)
COORDINATOR = web.AppKey("coordinator", Coordinator)
GATE = web.AppKey("gate", L402Gate)
ADMIN = web.AppKey("admin", AdminAuth)
SSE_TASKS = web.AppKey("sse_tasks", set)
READS = web.AppKey("read_cache", ReadCache)


class SseFrames:
    """Events as server-sent-event frames, each encoded once for every stream (an event
    never changes once written); the newest ``size`` kept."""

    def __init__(self, size: int = 8192):
        self.size = size
        self._frames: OrderedDict[int, bytes] = OrderedDict()

    def frame(self, event: dict[str, Any]) -> bytes:
        eid = event["id"]
        frame = self._frames.get(eid)
        if frame is None:
            data = json.dumps(event, separators=(",", ":"))
            frame = f"id: {eid}\nevent: {event['kind']}\ndata: {data}\n\n".encode()
            self._frames[eid] = frame
            if len(self._frames) > self.size:
                self._frames.popitem(last=False)
        return frame


SSE_FRAMES = web.AppKey("sse_frames", SseFrames)


def cached_json(body: bytes) -> web.Response:
    """A JSON answer from serialized bytes, with the headers ``web.json_response`` gives."""
    return web.Response(body=body, content_type="application/json", charset="utf-8")


def svc(request: web.Request) -> Coordinator:
    return request.app[COORDINATOR]


async def json_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object: the one the schema layer checked (coordinator/schema.py)
    against the route's body schema, or, for a route without one, parsed with the same caps."""
    if "json_body" in request:
        return request["json_body"]
    from l402tui.coordinator.schema import read_capped, parse_json

    body = parse_json(await read_capped(request)) if request.body_exists else None
    if not isinstance(body, dict):
        raise Invalid("the request body must be a JSON object", code="invalid_json")
    return body


def public_reads_middleware(gate: L402Gate, handlers: frozenset, errors: Any) -> Any:
    """aiohttp middleware, first in the chain: a free GET without a query string goes
    straight to its handler (through ``errors``, which maps refusals to answers),
    past the admin check, the L402 gate and the input schema, which have nothing to
    do for it beyond what is checked here: the per-address rate limit, the path's
    size and each id's (schema.py's limits).  Anything else, a query string included
    (the schema layer refuses unknown parameters) and a rate-limited client (the gate
    answers its 429), takes the whole chain.  ``handlers``: the routes' handlers that
    may skip it (GET, public, no query parameters declared)."""
    from l402tui.coordinator.schema import MAX_ID, MAX_PATH

    limits, client_ip = gate.ip_limits, gate.client_ip

    @web.middleware
    async def public_reads(request: web.Request, handler: Any) -> web.StreamResponse:
        match = request.match_info
        route_handler = match.handler
        if (route_handler in handlers and request.method == "GET" and not request.query_string
                and len(request.raw_path) <= MAX_PATH and all(len(v) <= MAX_ID for v in match.values())
                and limits.hit("ip:" + client_ip(request)) is None):
            try:
                return await route_handler(request)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # answered as the whole chain would: errors maps it
                async def again(request: web.Request) -> web.StreamResponse:
                    raise exc

                return await errors(request, again)
        return await handler(request)

    return public_reads


# A connection that has not sent a whole request head this long after it opened (or after
# its last answer) is closed: slow or incomplete headers cannot hold sockets for long.
HEADER_TIMEOUT_S = 15.0
# Open connections per client address.  Loopback is not capped: it is this machine's own
# TUI, scripts, and the TLS reverse proxy that every remote client arrives through.
MAX_CONNECTIONS_PER_IP = 128
_BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 5\r\n"
         b"Connection: close\r\nContent-Length: %d\r\n\r\n%s")
_BUSY_BODY = (b'{"error": "too_many_connections", "message": "too many open connections from your address; '
              b'close some and retry"}')


class ConnectionCap:
    """Caps open connections per client address on an aiohttp server (``install``): the
    one over the cap is answered 503 and closed before any of it is read."""

    def __init__(self, per_ip: int = MAX_CONNECTIONS_PER_IP, *, cap_loopback: bool = False):
        self.per_ip = per_ip
        self.cap_loopback = cap_loopback
        self.open: dict[str, int] = {}
        self.refused = 0
        self._ip_of: dict[Any, str] = {}

    def install(self, server: web.Server) -> None:
        made, lost = server.connection_made, server.connection_lost

        def connection_made(handler: Any, transport: Any) -> None:
            made(handler, transport)
            peer = transport.get_extra_info("peername")
            ip = peer[0] if isinstance(peer, (tuple, list)) and peer else None
            if ip is None or (not self.cap_loopback and _loopback(ip)):
                return
            if self.open.get(ip, 0) >= self.per_ip:
                self.refused += 1
                # Nothing of it is read: answer, and close a moment later (closing with its
                # request unread would reset the connection before the answer arrives).
                transport.pause_reading()
                transport.write(_BUSY % (len(_BUSY_BODY), _BUSY_BODY))
                if transport.can_write_eof():
                    transport.write_eof()
                asyncio.get_running_loop().call_later(1.0, transport.close)
                return
            self.open[ip] = self.open.get(ip, 0) + 1
            self._ip_of[handler] = ip

        def connection_lost(handler: Any, exc: BaseException | None = None) -> None:
            ip = self._ip_of.pop(handler, None)
            if ip is not None:
                left = self.open.get(ip, 1) - 1
                if left > 0:
                    self.open[ip] = left
                else:
                    self.open.pop(ip, None)
            lost(handler, exc)

        server.connection_made = connection_made  # type: ignore[method-assign]
        server.connection_lost = connection_lost  # type: ignore[method-assign]


def _loopback(ip: str) -> bool:
    import ipaddress

    try:
        address = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


class ShortBadRequestLogs(logging.Filter):
    """aiohttp logs a malformed request (a 100 kB request line, junk bytes) as an ERROR with
    a traceback whose message repeats what the client sent; anyone could fill the log with
    that.  Such records become one WARNING line with the reason cut short."""

    def filter(self, record: logging.LogRecord) -> bool:
        from aiohttp.http_exceptions import BadHttpMessage

        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, BadHttpMessage):
            reason = str(exc)
            record.msg = "bad request from %s: %s"
            record.args = (record.args[0] if isinstance(record.args, tuple) and record.args else "?",
                           reason if len(reason) <= 200 else reason[:200] + f"... ({len(reason)} characters)")
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.exc_info = record.exc_text = None
        return True


def quiet_bad_request_logs() -> None:
    server_log = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, ShortBadRequestLogs) for f in server_log.filters):
        server_log.addFilter(ShortBadRequestLogs())


@dataclass(frozen=True)
class Route:
    """One route of the HTTP API: the table app.py serves, schema.py checks and openapi.py documents."""

    method: str
    path: str
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    summary: str
    access: str = "public"  # public | l402 | token | admin | sponsor
    body: dict[str, Any] | None = None  # JSON schema of the request body
    responses: dict[int, str] = field(default_factory=dict)
    alias_of: str | None = None
    upload_types: tuple[str, ...] = ()  # content types taken as a raw upload instead of the JSON body
