"""Sponsor routes (``/api/v1/sponsor/...``): a sponsor who is not the operator posts, funds,
watches, reviews and closes its own bounties, and sees nothing else.

The credential is a sponsor macaroon (l402/sponsor.py), checked by
``sponsor_access.sponsor_access`` for every route declared here; posting and its fee are in
``sponsor_posting``.  Handlers reuse the service and ``operator_reads`` as the admin routes
do, only after the ownership check, and never show agents' L402 fees or another bounty.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from l402tui.coordinator import operator_reads
from l402tui.coordinator.admin_api import _evaluation_id, _int_query
from l402tui.coordinator.errors import Forbidden, NotFound
from l402tui.coordinator.http_common import json_body, svc
from l402tui.coordinator.service_payouts import REVIEW_DECISIONS
from l402tui.domain import PAYABLE
from l402tui.domain import SubmissionStatus as S
from l402tui.coordinator.sponsor_access import (_bounty_filter, _credential, _own_bounty, _own_submission,
                                                _owned_ids, _owned_sql, sponsor_access)
from l402tui.coordinator.sponsor_posting import UPLOAD_TYPES, sponsor_create_bounty

__all__ = ["SPONSOR_ROUTES", "sponsor_access"]


async def sponsor_whoami(request: web.Request) -> web.Response:
    credential = _credential(request, "read")
    store = svc(request).store
    row = await store.fetchone("SELECT name, origin FROM sponsors WHERE id = ?", (credential.sponsor_id,))
    tok = await store.fetchone("SELECT posts_allowed, posts_used FROM sponsor_tokens WHERE token_id = ?",
                               (credential.token_id,))
    left = None if tok["posts_allowed"] is None else max(0, tok["posts_allowed"] - tok["posts_used"])
    return web.json_response({"sponsor_id": credential.sponsor_id, "name": row["name"], "origin": row["origin"],
                              "capabilities": sorted(credential.capabilities), "valid_until": credential.valid_until,
                              "bounty_id": credential.bounty_id, "posts_left": left,
                              "bounties": await _owned_ids(request, credential)})


async def sponsor_list_bounties(request: web.Request) -> web.Response:
    ids = await _owned_ids(request, _credential(request, "read"))
    service = svc(request)
    return web.json_response({"bounties": [await service.get_bounty(i) for i in ids]})


async def sponsor_get_bounty(request: web.Request) -> web.Response:
    bounty_id = request.match_info["id"]
    await _own_bounty(request, bounty_id)
    service = svc(request)
    return web.json_response({**await service.get_bounty(bounty_id), "funding": await service.funding(bounty_id)})


async def sponsor_funding(request: web.Request) -> web.Response:
    bounty_id = request.match_info["id"]
    await _own_bounty(request, bounty_id)
    return web.json_response({"bounty_id": bounty_id, "funding": await svc(request).funding(bounty_id)})


async def sponsor_submissions(request: web.Request) -> web.Response:
    limit = _int_query(request, "limit", 500, 1, 100_000)
    subs: list[dict[str, Any]] = []
    for bounty_id in await _bounty_filter(request):
        subs += await svc(request).list_submissions(bounty_id, limit)
    return web.json_response({"submissions": subs[:limit]})


async def sponsor_submission(request: web.Request) -> web.Response:
    return web.json_response(await svc(request).submission_detail(await _own_submission(request)))


# A sponsor reads the diffs it pays for or must review, never one still being judged or one
# it rejected: otherwise a sponsor could collect the agents' ideas and cancel before any verdict.
DIFF_VISIBLE = (*PAYABLE, S.FLAGGED)


async def sponsor_diff(request: web.Request) -> web.Response:
    diff = await operator_reads.submission_diff(svc(request).store, await _own_submission(request))
    if diff["status"] not in DIFF_VISIBLE:
        raise Forbidden(f"submission {diff['submission_id']} is {diff['status']}: a sponsor reads the diffs of "
                        "accepted submissions (what it pays for) and of flagged ones (what it reviews)",
                        code="diff_not_visible")
    return web.json_response(diff)


async def sponsor_evaluations(request: web.Request) -> web.Response:
    limit = _int_query(request, "limit", 200, 1, 10_000)
    submission_id = request.query.get("submission_id")
    if submission_id:
        await _own_submission(request, submission_id=submission_id)
    rows: list[dict[str, Any]] = []
    for bounty_id in await _bounty_filter(request):
        rows += await operator_reads.list_evaluations(svc(request).store, limit=limit, bounty_id=bounty_id,
                                                      submission_id=submission_id)
    return web.json_response({"evaluations": rows[:limit]})


async def sponsor_eval_log(request: web.Request) -> web.Response:
    evaluation_id = _evaluation_id(request)
    store = svc(request).store
    bounty_id = await store.scalar("SELECT bounty_id FROM evaluations WHERE id = ?", (evaluation_id,))
    try:
        await _own_bounty(request, bounty_id or "")
    except NotFound:
        raise NotFound(f"no evaluation {evaluation_id} on this sponsor's bounties", code="unknown_evaluation") from None
    page = await operator_reads.eval_log_page(
        store, evaluation_id, _int_query(request, "offset", 0, 0, 2**62, clamp=False),
        _int_query(request, "max_bytes", operator_reads.LOG_PAGE_DEFAULT, 1, operator_reads.LOG_PAGE_MAX))
    return web.json_response(page)


async def sponsor_holdbacks(request: web.Request) -> web.Response:
    rows: list[dict[str, Any]] = []
    for bounty_id in await _bounty_filter(request):
        rows += await operator_reads.holdback_timers(svc(request).store, bounty_id)
    return web.json_response({"holdbacks": rows})


async def sponsor_books(request: web.Request) -> web.Response:
    """The sponsor's own books: its bounties' ledger entries, invoices and payments, and its
    posting fees.  Agents' L402 fees are the operator's business and are left out."""
    limit = _int_query(request, "limit", 500, 1, 100_000)
    service, credential = svc(request), _credential(request, "read")
    page: dict[str, list[dict[str, Any]]] = {"entries": [], "invoices": [], "payments": []}
    for bounty_id in await _bounty_filter(request):
        part = await service.ledger_page(bounty_id, limit)
        for key in page:
            page[key] += [r for r in part[key] if r.get("kind") != "l402"]
    page["invoices"] += await service.store.fetchall(
        "SELECT i.payment_hash, i.kind, i.bolt11, i.amount_msat, i.is_hold, i.status, i.bounty_id, i.submission_id, "
        "i.expires_at, i.created_at, i.updated_at FROM invoices i JOIN sponsor_tokens t ON t.payment_hash = "
        "i.payment_hash WHERE i.kind = 'posting_fee' AND t.sponsor_id = ?", (credential.sponsor_id,))
    return web.json_response({key: rows[:limit] for key, rows in page.items()})


async def sponsor_events(request: web.Request) -> web.Response:
    """Events of this sponsor's bounties (and their submissions), as JSON pages."""
    credential = _credential(request, "read")
    after = _int_query(request, "after", 0, 0, 2**62, clamp=False)
    limit = _int_query(request, "limit", 200, 1, 1000)
    owned, params = _owned_sql(credential)
    where = (f"kind NOT LIKE 'l402.%' AND kind NOT LIKE 'admin.%' AND (subject_id IN ({owned}) "
             f"OR json_extract(payload_json, '$.bounty_id') IN ({owned}) "
             f"OR subject_id IN (SELECT id FROM submissions WHERE bounty_id IN ({owned})))")
    store = svc(request).store
    rows = await store.fetchall(f"SELECT * FROM events WHERE id > ? AND {where} ORDER BY id LIMIT ?",
                                [after, *params * 3, limit])
    last = await store.scalar(f"SELECT COALESCE(MAX(id), 0) FROM events WHERE {where}", params * 3)
    from l402tui.coordinator.views import event_view

    return web.json_response({"events": [event_view(r) for r in rows], "last_event_id": int(last)})


# -- deciding: review, close, cancel, refund ----------------------------------------------------


async def sponsor_review(request: web.Request) -> web.Response:
    submission_id = await _own_submission(request, "review")
    body = await json_body(request)
    return web.json_response(await svc(request).review(submission_id, body.get("decision"), body.get("note", "")))


async def sponsor_close(request: web.Request) -> web.Response:
    bounty_id = request.match_info["id"]
    credential = await _own_bounty(request, bounty_id, "manage")
    return web.json_response(await svc(request).close_bounty(bounty_id, reason=f"closed by its sponsor "
                                                                               f"{credential.sponsor_id}"))


async def sponsor_cancel(request: web.Request) -> web.Response:
    bounty_id = request.match_info["id"]
    credential = await _own_bounty(request, bounty_id, "manage")
    return web.json_response(await svc(request).cancel_bounty(bounty_id, reason=f"cancelled by its sponsor "
                                                                                f"{credential.sponsor_id}"))


async def sponsor_refund(request: web.Request) -> web.Response:
    bounty_id = request.match_info["id"]
    await _own_bounty(request, bounty_id, "manage")
    body = await json_body(request)
    return web.json_response(await svc(request).claim_refund(bounty_id, body.get("invoice")))


_S = {401: "sponsor credential refused", 403: "capability missing"}
_MINE = {**_S, 404: "not one of this sponsor's bounties"}
_INVOICE = {"type": "object", "required": ["invoice"], "properties": {
    "invoice": {"type": "string", "minLength": 1, "maxLength": 4096}}}
GIT_BODY = {"type": "object", "required": ["git"], "additionalProperties": False, "properties": {
    "git": {"type": "object", "required": ["url", "commit"], "additionalProperties": False, "properties": {
        "url": {"type": "string", "minLength": 1, "maxLength": 2048},
        "commit": {"type": "string", "minLength": 1, "maxLength": 256, "description": "a full commit id or a tag"},
        "subdir": {"type": "string", "maxLength": 1024, "description": "the folder holding bounty.toml"}}}}}


def _r(method: str, path: str, handler: Any, summary: str, responses: dict[int, str], **extra: Any) -> dict[str, Any]:
    return dict(method=method, path=path, handler=handler, summary=summary, access="sponsor",
                responses={200: "ok", **responses}, **extra)


_P = "/api/v1/sponsor"
# Added to the app's route table (coordinator/app.py), checked by `sponsor_access`.
SPONSOR_ROUTES: list[dict[str, Any]] = [
    _r("GET", f"{_P}", sponsor_whoami, "Who this sponsor credential is: id, capabilities, expiry, posts left, "
       "bounties", _S),
    _r("GET", f"{_P}/bounties", sponsor_list_bounties, "This sponsor's bounties, every status", _S),
    _r("POST", f"{_P}/bounties", sponsor_create_bounty, "Post a bounty: an uploaded .tar.gz (Content-Type: "
       "application/gzip) or {'git': {url, commit, subdir}}. Without a credential: 402 for the posting fee; the "
       "paid token is the sponsor credential", {201: "bounty and funding hold invoice", 402: "pay the posting fee",
                                                409: "beyond hold window", 422: "invalid or over policy", **_S},
       body=GIT_BODY, upload_types=UPLOAD_TYPES),
    _r("GET", f"{_P}/bounties/{{id}}", sponsor_get_bounty, "One of this sponsor's bounties with its baseline and "
       "funding invoice", _MINE),
    _r("GET", f"{_P}/bounties/{{id}}/funding", sponsor_funding, "The funding hold invoice and its state", _MINE),
    _r("POST", f"{_P}/bounties/{{id}}/close", sponsor_close, "Close now (as at the deadline): salts revealed, the "
       "rest refunded", {**_MINE, 409: "cannot close"}),
    _r("POST", f"{_P}/bounties/{{id}}/cancel", sponsor_cancel, "Cancel a bounty that has paid nothing (the funding "
       "hold is cancelled)", {**_MINE, 409: "cannot cancel"}),
    _r("POST", f"{_P}/bounties/{{id}}/refund", sponsor_refund, "Give a BOLT11 invoice for the refund owed on the "
       "bounty", {**_MINE, 409: "nothing owed or halted", 422: "bad invoice"}, body=_INVOICE),
    _r("GET", f"{_P}/submissions", sponsor_submissions, "Submissions on this sponsor's bounties (?bounty_id=, "
       "?limit=)", _MINE),
    _r("GET", f"{_P}/submissions/{{id}}", sponsor_submission, "A submission with its whole verdict and evaluation "
       "detail", _MINE),
    _r("GET", f"{_P}/submissions/{{id}}/diff", sponsor_diff, "A submission's diff", _MINE),
    _r("POST", f"{_P}/submissions/{{id}}/review", sponsor_review, "Review a FLAGGED submission: accept (stake "
       "refunded) or confirm gaming (stake forfeited)", {**_MINE, 409: "not flagged"},
       body={"type": "object", "required": ["decision"], "properties": {
           "decision": {"type": "string", "enum": list(REVIEW_DECISIONS)},
           "note": {"type": "string", "maxLength": 2000}}}),
    _r("GET", f"{_P}/evaluations", sponsor_evaluations, "Evaluations of this sponsor's bounties (?bounty_id=, "
       "?submission_id=, ?limit=)", _MINE),
    _r("GET", f"{_P}/evaluations/{{id}}/log", sponsor_eval_log, "Full log of an evaluation from byte ?offset= "
       "(at most ?max_bytes=); follow with next_offset", {**_MINE, 422: "bad id or query"}),
    _r("GET", f"{_P}/holdbacks", sponsor_holdbacks, "Holdback timers of this sponsor's bounties (?bounty_id=)", _MINE),
    _r("GET", f"{_P}/ledger", sponsor_books, "This sponsor's books: its bounties' ledger entries, invoices and "
       "payments, and its posting fees (?bounty_id=, ?limit=)", _MINE),
    _r("GET", f"{_P}/events", sponsor_events, "Events of this sponsor's bounties as JSON (?after=, ?limit=) and "
       "the newest such event id", _S),
]


def _register_queries() -> None:
    """The sponsor routes' query parameters, where the schema layer and the OpenAPI document read them."""
    from l402tui.coordinator.openapi import QUERY

    integer = {"type": "integer", "minimum": 0, "maximum": 2**62}
    text = {"type": "string", "maxLength": 256}
    bounty, limit = ("bounty_id", text, "only this bounty (one of yours)"), ("limit", integer, "at most this many rows")
    QUERY.update({
        ("GET", f"{_P}/submissions"): [bounty, limit],
        ("GET", f"{_P}/evaluations"): [bounty, ("submission_id", text, "only this submission"), limit],
        ("GET", f"{_P}/evaluations/{{id}}/log"): [("offset", integer, "byte offset (next_offset of the last page)"),
                                                   ("max_bytes", integer, "page size in bytes (capped at 1 MiB)")],
        ("GET", f"{_P}/holdbacks"): [bounty],
        ("GET", f"{_P}/ledger"): [bounty, limit],
        ("GET", f"{_P}/events"): [("after", integer, "events after this id"), ("limit", integer, "at most 1000")],
    })


_register_queries()
