"""The coordinator's HTTP API: an aiohttp app factory over :class:`Coordinator`.

Handlers translate HTTP to service calls and back; they decide nothing.  The
route table below is also the source of ``/api/v1/openapi.json`` (openapi.py),
so the document cannot drift from the routes.
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial
from typing import Any, Callable

from aiohttp import web

from l402tui.coordinator.admin import AdminAuth, AdminRefused
from l402tui.coordinator.admin_api import (OPERATOR_ROUTES, admin_cancel, admin_close, admin_create_bounty,
                                           admin_funding, admin_ledger, admin_list_bounties, admin_revoke,
                                           admin_submissions, events)
from l402tui.coordinator.errors import CoordinatorError, Invalid
from l402tui.coordinator.http_common import (ADMIN, COORDINATOR, GATE, MAX_UPLOAD, READS, SSE_FRAMES, SSE_TASKS, Route,
                                             SseFrames, cached_json, json_body, public_reads_middleware, svc)
from l402tui.coordinator.read_cache import (FOREVER, ChangeMarks, ReadCache, bounties_built, bounty_built, dumps,
                                            status_built)
from l402tui.coordinator.service import Coordinator
from l402tui.coordinator.sponsor_api import SPONSOR_ROUTES, sponsor_access
from l402tui.l402.middleware import Gate, L402Gate, gated, read_credential, token_of, unauthorized
from l402tui.l402.tokens import RootKeyStore, TokenAuthority, TokenRefused

log = logging.getLogger("l402tui.http")

WORKER_STOP_S = 4.0  # `serve` must be gone within 5 s of SIGTERM


# Bodies (JSON Schema): checked before the handler runs (schema.py) and published as-is (openapi.py).
SUBMIT_BODY: dict[str, Any] = {"type": "object", "required": ["diff"], "properties": {
    "diff": {"type": "string", "minLength": 1, "description": "unified diff against the package's target/"},
    "claimed_score": {"type": ["number", "null"], "description": "your public-set score"},
    "payout_destination": {"type": ["string", "null"], "maxLength": 256,
                           "description": "a node id; or omit it and claim later with an invoice"}}}
UPLOAD_TYPES = ("application/gzip", "application/x-gzip", "application/octet-stream")


# -- public --------------------------------------------------------------------------------


async def list_bounties(request: web.Request) -> web.Response:
    reads = request.app[READS]
    body = reads.peek("bounties")
    if body is None:
        body = await reads.get("bounties", partial(bounties_built, svc(request)))
    return cached_json(body)


async def get_bounty(request: web.Request) -> web.Response:
    reads, key = request.app[READS], ("bounty", request.match_info["id"])
    body = reads.peek(key)
    if body is None:
        body = await reads.get(key, partial(bounty_built, svc(request), key[1]))
    return cached_json(body)


async def leaderboard(request: web.Request) -> web.Response:
    bounty_id = request.match_info["id"]
    return web.json_response({"bounty_id": bounty_id, "leaderboard": await svc(request).leaderboard(bounty_id)})


@gated("download", "download_sats")
async def download_package(request: web.Request) -> web.StreamResponse:
    path, sha256 = await svc(request).package(request.match_info["id"])
    return web.FileResponse(path, headers={
        "Content-Type": "application/gzip", "X-Package-SHA256": sha256,
        "Content-Disposition": f'attachment; filename="{request.match_info["id"]}.tar.gz"'})


def _number_or_none(value: Any, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise Invalid(f"'{name}' must be a number", code="invalid_request")
    return float(value)


@gated("submit", "submit_sats")
async def submit(request: web.Request) -> web.Response:
    body = await json_body(request)
    destination = body.get("payout_destination")
    if destination is not None and not isinstance(destination, str):
        raise Invalid("'payout_destination' must be a string (a node id, or omit it and claim later)",
                      code="invalid_request")
    diff = body.get("diff")
    if not isinstance(diff, str):
        raise Invalid("'diff' is required: a unified diff against the package's target/ folder",
                      code="invalid_request")
    view = await svc(request).submit(
        request.match_info["id"], token_of(request).token_id, diff,
        claimed_score=_number_or_none(body.get("claimed_score"), "claimed_score"),
        payout_destination=destination)
    return web.json_response(view, status=202)


async def submission_status(request: web.Request) -> web.Response:
    return web.json_response(await svc(request).submission(request.match_info["id"]))


async def claim(request: web.Request) -> web.Response:
    # The submitting token, scoped to the submission's bounty; a new token could never
    # be the submitter, so a refusal is a 401 with the reason, not a 402 challenge.
    bounty_id = (await svc(request).submission(request.match_info["id"]))["bounty_id"]
    try:
        credential = read_credential(request)
        if credential is None:
            raise TokenRefused("missing", "claiming needs the L402 token that made the submission")
        token = await request.app[GATE].authority.verify(credential, capability="submit", bounty_id=bounty_id)
    except TokenRefused as exc:
        return unauthorized(exc)
    body = await json_body(request)
    result = await svc(request).claim(request.match_info["id"], token.token_id, body.get("invoice"))
    return web.json_response(result)


async def well_known(request: web.Request) -> web.Response:
    # Built from the route table, so every gated route (aliases included) is listed.
    prices = request.app[GATE].prices_sats
    routes, token_routes = [], []
    for route in ROUTES:
        gate = getattr(route.handler, "__l402_gate__", None)
        if route.access == "l402" and gate is not None:
            entry = {"method": route.method, "path": route.path, "price_sats": prices.get(gate.price_key),
                     "capabilities": list(gate.grants)}
            routes.append(entry | ({"alias_of": route.alias_of} if route.alias_of else {}))
        elif route.access == "token":
            token_routes.append({"method": route.method, "path": route.path, "needs": "the submitting token"})
    return web.json_response({
        "version": "0", "scheme": ["L402", "LSAT"], "service": "bounties", "routes": routes,
        "token_routes": token_routes, "token_valid_s": request.app[GATE].token_valid_s,
    })


async def node_status(request: web.Request) -> web.Response:
    reads = request.app[READS]
    body = reads.peek("status")
    if body is None:
        body = await reads.get("status", partial(status_built, svc(request)))
    return cached_json(body)


async def openapi(request: web.Request) -> web.Response:
    from l402tui.coordinator.openapi import document

    async def build() -> tuple[bytes, float]:
        return dumps(document(ROUTES)), FOREVER

    return cached_json(await request.app[READS].get("openapi", build))


# -- admin ---------------------------------------------------------------------------------
ROUTES: list[Route] = [
    Route("GET", "/api/v1/bounties", list_bounties, "List open and finished bounties (free)",
          responses={200: "bounties"}),
    Route("GET", "/api/v1/bounties/{id}", get_bounty, "One bounty: metric, baseline, target, pool left, "
          "deadline, rules, held-out commitments", responses={200: "bounty", 404: "unknown bounty"}),
    Route("GET", "/api/v1/bounties/{id}/leaderboard", leaderboard, "Accepted submissions by improvement",
          responses={200: "leaderboard", 404: "unknown bounty"}),
    Route("GET", "/api/v1/bounties/{id}/package", download_package,
          "The bounty package (tarball: bounty.toml, target/, public/, scorer/); L402-gated",
          access="l402", responses={200: "tarball", 402: "payment required", 401: "credential refused",
                                    404: "unknown bounty", 409: "bounty not open", 429: "rate limited"}),
    Route("POST", "/api/v1/bounties/{id}/submissions", submit, "Submit a diff; L402-gated (submit capability)",
          access="l402", body=SUBMIT_BODY,
          responses={202: "submission", 401: "credential refused", 402: "payment required",
                     404: "unknown bounty", 409: "bounty not open", 422: "diff refused",
                     429: "rate or daily limit"}),
    Route("GET", "/api/v1/submissions/{id}", submission_status, "Submission status, scores and reasons "
          "(never eval logs)", responses={200: "submission", 404: "unknown submission"}),
    Route("POST", "/api/v1/submissions/{id}/claim", claim, "Claim what a submission is owed with a BOLT11 "
          "invoice; needs the submitting token", access="token",
          body={"type": "object", "required": ["invoice"], "properties": {
              "invoice": {"type": "string", "minLength": 1, "maxLength": 4096}}},
          responses={200: "payment", 401: "credential refused", 404: "unknown submission",
                     409: "not your submission", 503: "payouts unavailable"}),
    Route("GET", "/.well-known/l402.json", well_known, "Prices and capabilities per route",
          responses={200: "prices"}),
    Route("GET", "/api/v1/status", node_status, "Health: Lightning node and bounty counts",
          responses={200: "status"}),
    Route("GET", "/api/v1/openapi.json", openapi, "This document", responses={200: "OpenAPI 3.1"}),
    # Aliases for l402-train clients.
    Route("GET", "/bounties", list_bounties, "Alias of /api/v1/bounties", alias_of="/api/v1/bounties",
          responses={200: "bounties"}),
    Route("GET", "/bounty/{id}", get_bounty, "Alias of /api/v1/bounties/{id}", alias_of="/api/v1/bounties/{id}",
          responses={200: "bounty", 404: "unknown bounty"}),
    Route("POST", "/bounty/{id}/submit", submit, "Alias of POST /api/v1/bounties/{id}/submissions",
          access="l402", alias_of="/api/v1/bounties/{id}/submissions", body=SUBMIT_BODY,
          responses={202: "submission", 401: "credential refused", 402: "payment required", 404: "unknown bounty",
                     409: "bounty not open", 422: "diff refused", 429: "rate or daily limit"}),
    Route("GET", "/status", node_status, "Alias of /api/v1/status", alias_of="/api/v1/status",
          responses={200: "status"}),
    # Admin (Authorization: Bearer <admin.macaroon>).
    Route("GET", "/api/v1/admin/bounties", admin_list_bounties, "All bounties, drafts and cancelled included",
          access="admin", responses={200: "bounties", 401: "admin macaroon refused"}),
    Route("POST", "/api/v1/admin/bounties", admin_create_bounty, "Create a bounty from a path on this host "
          "or a git repository at a commit (JSON: path or git), or an uploaded .tar.gz (Content-Type: "
          "application/gzip, ?self_funded=1)", access="admin",
          body={"type": "object", "properties": {
              "path": {"type": "string", "minLength": 1, "maxLength": 4096}, "self_funded": {"type": "boolean"},
              "git": {"type": "object", "required": ["url", "commit"], "additionalProperties": False, "properties": {
                  "url": {"type": "string", "minLength": 1, "maxLength": 2048},
                  "commit": {"type": "string", "minLength": 1, "maxLength": 255},
                  "subdir": {"type": "string", "maxLength": 1024}}}}},
          upload_types=UPLOAD_TYPES,
          responses={201: "bounty and funding invoice", 401: "admin macaroon refused", 409: "beyond hold window",
                     422: "invalid bounty, over the operator's policy, or git source refused"}),
    Route("POST", "/api/v1/admin/bounties/{id}/cancel", admin_cancel, "Cancel (refund the funding hold)",
          access="admin", responses={200: "bounty", 401: "admin macaroon refused", 404: "unknown bounty",
                                     409: "cannot cancel"}),
    Route("POST", "/api/v1/admin/bounties/{id}/close", admin_close, "Close now (as at the deadline)",
          access="admin", responses={200: "bounty", 401: "admin macaroon refused", 404: "unknown bounty",
                                     409: "cannot close"}),
    Route("GET", "/api/v1/admin/bounties/{id}/funding", admin_funding, "The funding invoice and its state",
          access="admin", responses={200: "funding", 401: "admin macaroon refused", 404: "unknown bounty"}),
    Route("GET", "/api/v1/admin/submissions", admin_submissions, "All submissions (?bounty_id=, ?limit=)",
          access="admin", responses={200: "submissions", 401: "admin macaroon refused"}),
    Route("GET", "/api/v1/admin/ledger", admin_ledger, "Ledger entries, invoices and payments "
          "(?bounty_id=, ?limit=)", access="admin", responses={200: "ledger", 401: "admin macaroon refused"}),
    Route("POST", "/api/v1/admin/tokens/{token_id}/revoke", admin_revoke, "Revoke an L402 token",
          access="admin", responses={200: "revoked", 401: "admin macaroon refused"}),
    Route("GET", "/api/v1/events", events, "Server-sent events of every state change (?after=, Last-Event-ID)",
          access="admin", responses={200: "text/event-stream", 401: "admin macaroon refused"}),
]
# Evaluation logs, diffs, holdback timers, review and payout repairs (for `--attach`).
ROUTES += [Route(**spec) for spec in OPERATOR_ROUTES]
ROUTES += [Route(**spec) for spec in SPONSOR_ROUTES]  # a sponsor's own bounties (sponsor_api.py)

_ADMIN_HANDLERS = {r.handler for r in ROUTES if r.access == "admin"}
_SPONSOR_HANDLERS = {r.handler for r in ROUTES if r.access == "sponsor"}


@web.middleware
async def errors_middleware(request: web.Request, handler: Callable) -> web.StreamResponse:
    try:
        return await handler(request)
    except CoordinatorError as exc:
        headers = {"Retry-After": str(exc.details["retry_after_s"])} if "retry_after_s" in exc.details else None
        return web.json_response(exc.to_json(), status=exc.status, headers=headers)
    except web.HTTPException as exc:
        if exc.status >= 400 and exc.content_type != "application/json":
            return web.json_response({"error": exc.reason.lower().replace(" ", "_"), "message": exc.text or
                                      exc.reason}, status=exc.status, headers={
                k: v for k, v in exc.headers.items() if k.lower() == "allow"})
        raise
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return web.json_response({"error": "internal", "message": "internal error; see the coordinator log"},
                                 status=500)


def _admin_middleware(auth: AdminAuth) -> Callable:
    @web.middleware
    async def admin_only(request: web.Request, handler: Callable) -> web.StreamResponse:
        route_handler = getattr(request.match_info.route, "handler", None)
        if route_handler in _ADMIN_HANDLERS:
            try:
                await auth.verify_header(request.headers.get("Authorization"))
            except AdminRefused as exc:
                return web.json_response({"error": "unauthorized", "reason": "admin", "message": exc.message},
                                         status=401, headers={"WWW-Authenticate": 'Bearer realm="l402tui-admin"'})
        elif route_handler in _SPONSOR_HANDLERS and (refused := await sponsor_access(request)) is not None:
            return refused
        return await handler(request)

    return admin_only


def create_app(coordinator: Coordinator, *, manage_lifecycle: bool = True,
               run_evaluations: bool = False) -> web.Application:
    """The HTTP app over ``coordinator``.  With ``manage_lifecycle`` the app starts and
    stops the service's background work (and closes it) with the server; with
    ``run_evaluations`` it also works the evaluation queue in-process."""
    cfg = coordinator.cfg
    authority = TokenAuthority(RootKeyStore(coordinator.store))

    async def before_challenge(bounty_id: str, gate: Gate) -> None:
        await coordinator.ensure_sellable(bounty_id, gate.capability)

    gate = L402Gate(
        coordinator.store, coordinator.backend, authority,
        prices_sats=dict(cfg.section("prices")), token_valid_s=int(cfg.get("coordinator.token_valid_s")),
        per_token_per_minute=int(cfg.get("rate_limits.per_token_per_minute")),
        per_ip_per_minute=int(cfg.get("rate_limits.per_ip_per_minute")),
        trust_forwarded_for=bool(cfg.get("coordinator.trust_forwarded_for")),
        before_challenge=before_challenge, exempt_prefixes=("/api/v1/admin", "/api/v1/events"),
        max_unpaid_challenges=int(cfg.get("l402.max_unpaid_challenges")))
    admin = AdminAuth(coordinator.store)
    from l402tui.coordinator.openapi import QUERY
    from l402tui.coordinator.schema import input_middleware

    checked = input_middleware({(r.method, r.path): r for r in ROUTES}, QUERY)
    free_reads = frozenset(r.handler for r in ROUTES if r.method == "GET" and r.access == "public"
                           and (r.method, r.path) not in QUERY and not hasattr(r.handler, "__l402_gate__"))
    app = web.Application(middlewares=[public_reads_middleware(gate, free_reads, errors_middleware), errors_middleware,
                                       _admin_middleware(admin), gate.middleware, checked],
                          client_max_size=MAX_UPLOAD)
    app[COORDINATOR] = coordinator
    app[GATE] = gate
    app[ADMIN] = admin
    app[SSE_TASKS] = set()
    app[SSE_FRAMES] = SseFrames()
    marks = ChangeMarks(coordinator.store.path)
    app[READS] = ReadCache(marks.read)

    async def stop_watching(app: web.Application) -> None:
        marks.close()
        await gate.unpaid.close()

    app.on_cleanup.append(stop_watching)
    for route in ROUTES:
        app.router.add_route(route.method, route.path, route.handler)

    async def stop_streams(app: web.Application) -> None:
        for task in list(app[SSE_TASKS]):
            task.cancel()

    app.on_shutdown.append(stop_streams)
    if manage_lifecycle:
        stop = asyncio.Event()
        worker: list[asyncio.Task] = []

        async def lifecycle(app: web.Application):
            await coordinator.start()
            if run_evaluations:
                from l402tui.evaluation.worker import run_worker

                worker.append(asyncio.create_task(run_worker(coordinator.store, cfg, stop=stop), name="evaluations"))
            yield
            await stop_evaluations(app)
            await coordinator.close()

        async def stop_evaluations(app: web.Application) -> None:
            # Running evaluations are cancelled (sandboxes killed) and re-queued for the next start.
            stop.set()
            for task in worker:
                if task.done():
                    continue
                try:
                    await asyncio.wait_for(asyncio.shield(task), timeout=WORKER_STOP_S)
                except asyncio.TimeoutError:
                    log.warning("the evaluation worker did not stop within %.0f s; what it was doing is "
                                "re-queued at the next start", WORKER_STOP_S)
                    task.cancel()

        app.cleanup_ctx.append(lifecycle)
        # on_shutdown runs before the server waits for open requests: evaluations stop at once.
        app.on_shutdown.append(stop_evaluations)
    return app
