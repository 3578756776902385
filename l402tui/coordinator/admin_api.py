"""Admin routes (behind the admin macaroon): bounty management, ledger views, events,
and what the sponsor's side needs when the TUI is attached to a daemon (evaluation
logs, diffs, holdback timers, the review of a flagged submission, payout repairs).

Handlers translate HTTP to the service, ``operator_reads`` and the payouts module
(through ``seams``, as the service does) and back; they decide nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from aiohttp import web

from l402tui.coordinator import ledger, operator_reads, seams
from l402tui.coordinator.errors import Conflict, Invalid, Unavailable
from l402tui.coordinator.admin import AdminRefused
from l402tui.coordinator.http_common import ADMIN, GATE, SSE_TASKS, json_body, svc
from l402tui.coordinator.schema import event_id

log = logging.getLogger("l402tui.http")

HEARTBEAT_S = 15.0  # below common proxy idle timeouts
RECONNECT_MS = 2000  # what an EventSource waits before it reconnects (sent as `retry:`)
REVERIFY_S = 1.0  # an open stream re-checks its admin macaroon at most this often (revocation)
REVIEW_DECISIONS = {"accept": False, "gaming": True}  # decision -> gaming confirmed


async def admin_list_bounties(request: web.Request) -> web.Response:
    return web.json_response({"bounties": await svc(request).list_bounties(include_all=True)})


async def admin_create_bounty(request: web.Request) -> web.Response:
    service = svc(request)
    if request.content_type in ("application/gzip", "application/x-gzip", "application/octet-stream"):
        data = await request.read()
        # ?self_funded= was checked as a boolean by the schema layer (coordinator/schema.py).
        result = await service.create_bounty(data, self_funded=request.get("query:self_funded", False))
    else:
        body = await json_body(request)
        path = body.get("path")
        if not isinstance(path, str) or not path:
            raise Invalid("give {'path': '<bounty folder on the coordinator host>'} or upload a .tar.gz "
                          "with Content-Type: application/gzip", code="invalid_request")
        if "\0" in path or any(len(part.encode("utf-8", "surrogatepass")) > 255 for part in path.split("/")):
            raise Invalid("'path' is not a usable folder name on this host (a NUL byte, or a component "
                          "over 255 bytes)", code="invalid_request", details={"field": "path"})
        result = await service.create_bounty(path, self_funded=body.get("self_funded", False) is True)
    return web.json_response(result, status=201)


async def admin_cancel(request: web.Request) -> web.Response:
    return web.json_response(await svc(request).cancel_bounty(request.match_info["id"]))


async def admin_close(request: web.Request) -> web.Response:
    return web.json_response(await svc(request).close_bounty(request.match_info["id"]))


async def admin_funding(request: web.Request) -> web.Response:
    bounty_id = request.match_info["id"]
    await svc(request).get_bounty(bounty_id)
    return web.json_response({"bounty_id": bounty_id, "funding": await svc(request).funding(bounty_id)})


def _int_query(request: web.Request, name: str, default: int, lo: int, hi: int, *, clamp: bool = True) -> int:
    """An integer query parameter; sizes are clamped to [lo, hi], positions (clamp=False) refused outside."""
    try:
        value = int(request.query.get(name, str(default)))
    except ValueError:
        raise Invalid(f"'{name}' must be an integer", code="invalid_request") from None
    if not clamp and not lo <= value <= hi:
        raise Invalid(f"'{name}' must be between {lo} and {hi} (got {value})", code="invalid_request")
    return max(lo, min(hi, value))


def _limit(request: web.Request) -> int:
    return _int_query(request, "limit", 500, 1, 100_000)


async def admin_submissions(request: web.Request) -> web.Response:
    subs = await svc(request).list_submissions(request.query.get("bounty_id"), _limit(request))
    return web.json_response({"submissions": subs})


async def admin_ledger(request: web.Request) -> web.Response:
    return web.json_response(await svc(request).ledger_page(request.query.get("bounty_id"), _limit(request)))


async def admin_revoke(request: web.Request) -> web.Response:
    n = await request.app[GATE].authority.revoke(request.match_info["token_id"])
    return web.json_response({"token_id": request.match_info["token_id"], "revoked_keys": n})


async def events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: every state change, from ``?after=`` or ``Last-Event-ID`` on."""
    # Checked before the stream starts: once it has, an error can no longer be a status code.
    if "Last-Event-ID" in request.headers:
        after = event_id(request.headers["Last-Event-ID"], "Last-Event-ID")
    else:
        after = event_id(request.query.get("after", "0"), "after")
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                           "X-Accel-Buffering": "no"})
    await response.prepare(request)
    task = asyncio.current_task()
    request.app[SSE_TASKS].add(task)
    credential, checked = request.headers.get("Authorization"), time.monotonic()
    try:
        await response.write(f": l402tui events\nretry: {RECONNECT_MS}\n\n".encode())
        async for event in svc(request).follow_events(after, heartbeat_s=HEARTBEAT_S):
            if time.monotonic() - checked >= REVERIFY_S:
                # A macaroon revoked (or rotated) while its stream is open stops it too.
                await request.app[ADMIN].verify_header(credential)
                checked = time.monotonic()
            if event is None:
                await response.write(b": keepalive\n\n")
                continue
            data = json.dumps(event, separators=(",", ":"))
            await response.write(f"id: {event['id']}\nevent: {event['kind']}\ndata: {data}\n\n".encode())
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    except AdminRefused:
        log.info("event stream ended: its admin macaroon is no longer valid")
    except Exception:  # noqa: BLE001 - the 200 is sent: end the stream; the client reconnects from its last id
        log.exception("event stream from %s ended by an error", after)
    finally:
        request.app[SSE_TASKS].discard(task)
    return response




# -- what the sponsor's side reads and decides (the TUI attached to a daemon) -------------------


async def admin_events_page(request: web.Request) -> web.Response:
    """A page of events as JSON (the stream's catch-up, and where it stands now)."""
    after = _int_query(request, "after", 0, 0, 2**62, clamp=False)
    limit = _int_query(request, "limit", 200, 1, 1000)
    service = svc(request)
    return web.json_response({"events": await service.events_after(after, limit),
                              "last_event_id": await service.last_event_id()})


async def admin_evaluations(request: web.Request) -> web.Response:
    rows = await operator_reads.list_evaluations(
        svc(request).store, limit=_int_query(request, "limit", 200, 1, 10_000),
        bounty_id=request.query.get("bounty_id"), submission_id=request.query.get("submission_id"))
    return web.json_response({"evaluations": rows})


def _evaluation_id(request: web.Request) -> int:
    raw = request.match_info["id"]
    try:
        value = int(raw)
    except ValueError:
        raise Invalid(f"evaluation id {raw!r} is not a number; GET /api/v1/admin/evaluations lists them",
                      code="invalid_request") from None
    if not 0 < value < 2**63:
        raise Invalid(f"evaluation id {raw!r} is out of range", code="invalid_request")
    return value


async def admin_eval_log(request: web.Request) -> web.Response:
    page = await operator_reads.eval_log_page(
        svc(request).store, _evaluation_id(request), _int_query(request, "offset", 0, 0, 2**62, clamp=False),
        _int_query(request, "max_bytes", operator_reads.LOG_PAGE_DEFAULT, 1, operator_reads.LOG_PAGE_MAX))
    return web.json_response(page)


async def admin_submission(request: web.Request) -> web.Response:
    """A submission with its whole verdict and evaluation detail (the agent's route shows codes only)."""
    return web.json_response(await svc(request).submission_detail(request.match_info["id"]))


async def admin_diff(request: web.Request) -> web.Response:
    return web.json_response(await operator_reads.submission_diff(svc(request).store, request.match_info["id"]))


async def admin_holdbacks(request: web.Request) -> web.Response:
    rows = await operator_reads.holdback_timers(svc(request).store, request.query.get("bounty_id"))
    return web.json_response({"holdbacks": rows})


async def _payouts(request: web.Request, name: str, *args: Any, **kwargs: Any) -> Any:
    """``payouts.<name>(store, backend, cfg, ...)``: what the service and the in-process TUI call."""
    module = seams.payouts_module()
    fn = getattr(module, name, None) if module is not None else None
    if fn is None:
        raise Unavailable(f"this coordinator build has no payouts.{name}", code="payouts_unavailable")
    from l402tui.coordinator.payout_sender import PayoutsHalted  # the payouts engine, loaded on use

    service = svc(request)
    try:
        return await fn(service.store, service.backend, service.cfg, *args, **kwargs)
    except PayoutsHalted as exc:
        raise Conflict(f"{exc}; see GET /api/v1/admin/payouts, then POST /api/v1/admin/payouts/resume",
                       code="payouts_halted") from None


async def admin_review(request: web.Request) -> web.Response:
    """The sponsor's word on a FLAGGED submission: accept (the stake is refunded) or confirm
    gaming (the stake is forfeited to the pool)."""
    submission_id = request.match_info["id"]
    body = await json_body(request)
    decision, note = body.get("decision"), body.get("note", "")
    if not isinstance(decision, str) or decision not in REVIEW_DECISIONS:
        raise Invalid(f"'decision' must be one of {', '.join(REVIEW_DECISIONS)} (got {decision!r})",
                      code="invalid_request")
    if not isinstance(note, str) or len(note) > 2000:
        raise Invalid("'note' must be a string of at most 2000 characters", code="invalid_request")
    service = svc(request)
    await service.submission_detail(submission_id)  # 404 with the usual message for an unknown id
    await _payouts(request, "confirm_gaming", submission_id, REVIEW_DECISIONS[decision], note)
    return web.json_response({"submission_id": submission_id, "decision": decision,
                              "gaming_confirmed": REVIEW_DECISIONS[decision], "note": note,
                              "submission": await service.submission_detail(submission_id)})


def _bolt11(body: dict[str, Any]) -> str:
    invoice = body.get("invoice")
    if not isinstance(invoice, str) or not invoice.strip():
        raise Invalid("give {'invoice': '<BOLT11 invoice for exactly the amount owed>'}", code="invalid_request")
    return invoice


async def admin_claim_refund(request: web.Request) -> web.Response:
    bounty_id = request.match_info["id"]
    body = await json_body(request)
    await svc(request).get_bounty(bounty_id)
    return web.json_response(await _payouts(request, "claim_refund", bounty_id, _bolt11(body)))


async def admin_resolve_payment(request: web.Request) -> web.Response:
    """An operator's verdict on an UNKNOWN payment, after checking the node by hand."""
    body = await json_body(request)
    sent, fee = body.get("sent"), body.get("fee_msat", 0)
    if not isinstance(sent, bool):
        raise Invalid("'sent' must be true (the node shows it paid) or false (it did not leave: retry it)",
                      code="invalid_request")
    if isinstance(fee, bool) or not isinstance(fee, int) or not 0 <= fee < 2**62:
        raise Invalid("'fee_msat' must be a non-negative integer (the routing fee the node reports)",
                      code="invalid_request")
    return web.json_response(await _payouts(request, "resolve_unknown", request.match_info["key"],
                                            sent=sent, fee_msat=fee))


async def admin_payouts(request: web.Request) -> web.Response:
    return web.json_response(await operator_reads.payouts_state(svc(request).store))


async def admin_resume_payouts(request: web.Request) -> web.Response:
    """Resume payouts after a halt; the books are checked again first."""
    body = await json_body(request)
    note = body.get("note")
    if not isinstance(note, str) or not note.strip():
        raise Invalid("give {'note': '<what was wrong and how it was fixed>'}: it goes into the event log",
                      code="invalid_request")
    store = svc(request).store
    if await ledger.halted_reason(store) is None:
        return web.json_response({"halted": None, "resumed": False})
    try:
        await ledger.resume(store, note.strip())
    except ledger.InvariantBroken as exc:
        raise Conflict("the books still do not balance; payouts stay halted until they do",
                       code="books_do_not_balance", details={"problems": exc.problems}) from None
    return web.json_response({"halted": None, "resumed": True})


_ADMIN = {401: "admin macaroon refused"}

# Added to the app's route table (coordinator/app.py builds `Route`s from these).
OPERATOR_ROUTES: list[dict[str, Any]] = [
    dict(method="GET", path="/api/v1/admin/events", handler=admin_events_page,
         summary="Events as JSON (?after=, ?limit= up to 1000) and the newest event id", access="admin",
         responses={200: "events", **_ADMIN, 422: "bad query"}),
    dict(method="GET", path="/api/v1/admin/evaluations", handler=admin_evaluations,
         summary="Evaluations, running first (?bounty_id=, ?submission_id=, ?limit=)", access="admin",
         responses={200: "evaluations", **_ADMIN, 422: "bad query"}),
    dict(method="GET", path="/api/v1/admin/evaluations/{id}/log", handler=admin_eval_log,
         summary="Whole log lines of an evaluation from byte ?offset= (at most ?max_bytes=, 1 MiB cap); "
                 "follow with next_offset", access="admin",
         responses={200: "log page", **_ADMIN, 404: "unknown evaluation", 422: "bad id or query"}),
    dict(method="GET", path="/api/v1/admin/submissions/{id}", handler=admin_submission,
         summary="A submission with its whole verdict, the evaluation's error and reason code", access="admin",
         responses={200: "submission", **_ADMIN, 404: "unknown submission"}),
    dict(method="GET", path="/api/v1/admin/submissions/{id}/diff", handler=admin_diff,
         summary="A submission's diff (for the sponsor's review)", access="admin",
         responses={200: "diff", **_ADMIN, 404: "unknown submission"}),
    dict(method="POST", path="/api/v1/admin/submissions/{id}/review", handler=admin_review,
         summary="Review a FLAGGED submission: accept (stake refunded) or confirm gaming (stake forfeited)",
         access="admin", body={"type": "object", "required": ["decision"], "properties": {
             "decision": {"type": "string", "enum": list(REVIEW_DECISIONS)},
             "note": {"type": "string", "maxLength": 2000}}},
         responses={200: "decision recorded", **_ADMIN, 404: "unknown submission", 409: "not flagged",
                    422: "bad decision"}),
    dict(method="GET", path="/api/v1/admin/holdbacks", handler=admin_holdbacks,
         summary="Holdback timers: release time, amount, state (?bounty_id=)", access="admin",
         responses={200: "holdbacks", **_ADMIN}),
    dict(method="GET", path="/api/v1/admin/payouts", handler=admin_payouts,
         summary="Whether payouts are halted (and why), and payments in state UNKNOWN", access="admin",
         responses={200: "payouts state", **_ADMIN}),
    dict(method="POST", path="/api/v1/admin/payouts/resume", handler=admin_resume_payouts,
         summary="Resume payouts after a halt (the books are checked first)", access="admin",
         body={"type": "object", "required": ["note"], "properties": {
             "note": {"type": "string", "minLength": 1, "maxLength": 2000}}},
         responses={200: "resumed", **_ADMIN, 409: "books do not balance", 422: "note missing"}),
    dict(method="POST", path="/api/v1/admin/payments/{key}/resolve", handler=admin_resolve_payment,
         summary="Resolve an UNKNOWN payment after checking the node: sent (booked as paid) or not (retried)",
         access="admin", body={"type": "object", "required": ["sent"], "properties": {
             "sent": {"type": "boolean"}, "fee_msat": {"type": "integer", "minimum": 0, "maximum": 2**62}}},
         responses={200: "payment", **_ADMIN, 404: "unknown payment", 409: "not UNKNOWN", 422: "bad body"}),
    dict(method="POST", path="/api/v1/admin/bounties/{id}/refund", handler=admin_claim_refund,
         summary="Pay the sponsor's BOLT11 invoice for a refund owed on the bounty", access="admin",
         body={"type": "object", "required": ["invoice"], "properties": {
             "invoice": {"type": "string", "minLength": 1, "maxLength": 4096}}},
         responses={200: "payment", **_ADMIN, 404: "unknown bounty", 409: "nothing owed or halted",
                    422: "bad invoice"}),
]
