"""Who a sponsor request is, and what it may touch: the access check of every sponsor route
(called from the app's access middleware) and the ownership checks the handlers make.

A bounty, submission or evaluation is a sponsor's when a ``sponsor_bounties`` row (written
when it posted the bounty) names it, and the credential is not narrowed to another bounty.
Anything else answers the same 404 as an id that does not exist, so a sponsor cannot even
learn which drafts of others exist.
"""

from __future__ import annotations

import weakref
from typing import Any

from aiohttp import web

from l402tui.coordinator import ledger
from l402tui.coordinator.errors import Forbidden, NotFound
from l402tui.coordinator.http_common import svc
from l402tui.coordinator.posting_fees import book_posting_fee
from l402tui.coordinator.service import Coordinator
from l402tui.l402.sponsor import SponsorAuthority, SponsorCredential, SponsorRefused

SPONSOR_KEY = "sponsor_credential"  # request[SPONSOR_KEY] -> SponsorCredential (None: none sent, posting only)
POST_PATH = "/api/v1/sponsor/bounties"  # the one route that answers without a credential (the fee's 402)

_authorities: "weakref.WeakKeyDictionary[Coordinator, SponsorAuthority]" = weakref.WeakKeyDictionary()


def authority(request: web.Request) -> SponsorAuthority:
    coord = svc(request)
    found = _authorities.get(coord)
    if found is None:
        found = _authorities[coord] = SponsorAuthority(coord.store)
    return found


def _refusal(exc: SponsorRefused) -> web.Response:
    return web.json_response({"error": "unauthorized", "reason": exc.reason, "message": exc.message},
                             status=exc.status, headers={"WWW-Authenticate": 'Bearer realm="l402tui-sponsor"'})


async def sponsor_access(request: web.Request) -> web.Response | None:
    """The access check of every sponsor route: None to go on (the credential is in
    ``request[SPONSOR_KEY]``), or the 401 to send.  Only the create route goes on without
    a credential (it answers with the posting-fee challenge itself)."""
    header = request.headers.getall("Authorization", [])
    resource = getattr(request.match_info.route, "resource", None)
    if not header and request.method == "POST" and getattr(resource, "canonical", "") == POST_PATH:
        request[SPONSOR_KEY] = None
        return None
    if len(header) > 1:
        return _refusal(SponsorRefused("malformed", "send one Authorization header, not several"))
    try:
        credential = await authority(request).verify(header[0] if header else None)
    except SponsorRefused as exc:
        return _refusal(exc)
    if credential.payment_hash is not None:
        await _book_posting_fee(svc(request), credential)
    request[SPONSOR_KEY] = credential
    return None


async def _book_posting_fee(coord: Coordinator, credential: SponsorCredential) -> None:
    """A paid credential's preimage proves its fee was paid: record it (once) even when the
    invoice stream has not told us yet, so the operator's books show it."""
    row = await coord.store.fetchone("SELECT status FROM invoices WHERE payment_hash = ? AND kind = 'posting_fee'",
                                     (credential.payment_hash,))
    if row is None:
        return
    if row["status"] == "OPEN":
        await coord.apply_invoice_state(credential.payment_hash, "SETTLED")  # books the fee too
    if not await ledger.posted(coord.store, f"posting_fee:{credential.payment_hash}"):
        async with coord.transaction() as txn:
            await book_posting_fee(txn, credential.payment_hash)


def _credential(request: web.Request, capability: str) -> SponsorCredential:
    credential: SponsorCredential | None = request.get(SPONSOR_KEY)
    if credential is None:  # only the create route lets a request without one through
        raise Forbidden("this route needs a sponsor credential", code="unauthorized")
    if not credential.may(capability):
        have = ",".join(sorted(credential.capabilities)) or "none"
        raise Forbidden(f"this sponsor credential lacks the '{capability}' capability (it has: {have})",
                        code="missing_capability")
    return credential


async def _own_bounty(request: web.Request, bounty_id: str, capability: str = "read") -> SponsorCredential:
    credential = _credential(request, capability)
    owner = await svc(request).store.scalar("SELECT sponsor_id FROM sponsor_bounties WHERE bounty_id = ?",
                                            (bounty_id,))
    if owner != credential.sponsor_id or (credential.bounty_id is not None and credential.bounty_id != bounty_id):
        raise NotFound(f"no bounty {bounty_id!r} among this sponsor's bounties; GET /api/v1/sponsor/bounties "
                       "lists them", code="unknown_bounty")
    return credential


async def _own_submission(request: web.Request, capability: str = "read", submission_id: str | None = None) -> str:
    submission_id = submission_id or request.match_info["id"]
    bounty_id = await svc(request).store.scalar("SELECT bounty_id FROM submissions WHERE id = ?", (submission_id,))
    try:
        await _own_bounty(request, bounty_id or "", capability)
    except NotFound:
        raise NotFound(f"no submission {submission_id!r} on this sponsor's bounties", code="unknown_submission") \
            from None
    return submission_id


def _owned_sql(credential: SponsorCredential) -> tuple[str, list[Any]]:
    """A subquery of the bounty ids this credential may see."""
    sql, params = "SELECT bounty_id FROM sponsor_bounties WHERE sponsor_id = ?", [credential.sponsor_id]
    if credential.bounty_id is not None:
        sql, params = sql + " AND bounty_id = ?", params + [credential.bounty_id]
    return sql, params


async def _owned_ids(request: web.Request, credential: SponsorCredential) -> list[str]:
    sql, params = _owned_sql(credential)
    return [r["bounty_id"] for r in await svc(request).store.fetchall(sql + " ORDER BY created_at DESC", params)]


async def _bounty_filter(request: web.Request) -> list[str]:
    """The ``?bounty_id=`` asked for (which must be ours), else every bounty we may read."""
    credential = _credential(request, "read")
    wanted = request.query.get("bounty_id")
    if wanted:
        await _own_bounty(request, wanted)
        return [wanted]
    return await _owned_ids(request, credential)
