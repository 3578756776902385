"""Posting a bounty as a sponsor: the posting fee's L402 challenge, then the upload.

``POST /api/v1/sponsor/bounties`` without a credential answers 402 when the operator's
policy lets anyone who pays post (coordinator/policy.py): an invoice for the posting fee
and a sponsor credential bound to its payment hash, good for one bounty.  With a
credential that still has a post, the body (a .tar.gz, or a git source) becomes a bounty
whose funding hold invoice the sponsor pays; with one whose post is used, a new 402 for
the same sponsor.  A sponsor never names a path: the coordinator's files are not its own.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

from aiohttp import web

from l402tui.coordinator.errors import Conflict, Forbidden, Invalid, L402TuiError, Unavailable
from l402tui.coordinator.http_common import json_body, svc
from l402tui.coordinator.service import Coordinator
from l402tui.coordinator.sponsor_access import SPONSOR_KEY, _credential, authority
from l402tui.l402.middleware import challenge_headers
from l402tui.l402.sponsor import PAID, SponsorCredential

PAID_VALID_S = 90 * 86400  # a bought credential outlives the bounty it posts (hold window, refunds after close)
FEE_INVOICE_EXPIRY_S = 600
UPLOAD_TYPES = ("application/gzip", "application/x-gzip", "application/octet-stream")


def _policy(request: web.Request) -> Any:
    from l402tui.coordinator.policy import PostingPolicy

    return PostingPolicy.from_config(svc(request).cfg)


async def _isolation_refusal(coord: Coordinator) -> str | None:
    """Why this coordinator cannot take a sponsor's bounty now: a sponsor's run, tests and
    scorer are a stranger's code, which runs only in a sandbox (the worker refuses them on
    the local runner too, should the sandbox go away later)."""
    from l402tui.evaluation.runners import sandbox_status

    settings = coord.cfg.section("evaluation")
    if settings.get("allow_unsandboxed") or settings.get("executor") == "ray":
        return None  # the operator's explicit consent; or the cluster's nodes, each with its own
    statuses, chosen = await asyncio.to_thread(sandbox_status, settings)
    if chosen != "local":
        return None
    why = "; ".join(f"{s.kind}: {s.detail}" for s in statuses if s.kind != "local" and not s.available)
    return ("this coordinator has no sandbox (bwrap or docker) to run a sponsor's code in, so it takes no "
            f"bounties from sponsors now ({why}); its operator can set one up with `l402tui sandbox setup`")


async def _challenge(request: web.Request, sponsor_id: str | None, fee_sats: int, why: str | None = None) -> web.Response:
    """402: an invoice for the posting fee and a sponsor credential bound to its payment hash."""
    if fee_sats <= 0:
        raise Forbidden("this coordinator takes paid postings but its posting fee is 0 (policy.posting_fee_sats); "
                        "ask the operator for an invite", code="posting_fee_unset")
    coord, auth = svc(request), authority(request)
    amount_msat = fee_sats * 1000
    new_id = sponsor_id
    invoice = await coord.backend.create_invoice(amount_msat, "l402tui: sponsor posting fee", FEE_INVOICE_EXPIRY_S)
    valid_until = int(time.time() + PAID_VALID_S)
    async with coord.transaction() as txn:
        if new_id is None:  # a first-time sponsor: its row is written with the invoice, not before
            new_id = await auth.new_sponsor(txn, origin=PAID)
        minted = await auth.mint(txn, new_id, valid_until=valid_until, payment_hash=invoice.payment_hash,
                                 posts_allowed=1)
        await txn.insert("invoices", {
            "payment_hash": invoice.payment_hash, "kind": "posting_fee", "bolt11": invoice.bolt11,
            "amount_msat": amount_msat, "is_hold": 0, "status": "OPEN", "expires_at": invoice.expires_at,
            "created_at": time.time(), "updated_at": time.time()})
    body = {"error": "payment_required", "message": f"pay the posting fee ({fee_sats} sats), then retry with "
            "'Authorization: L402 <macaroon>:<preimage>'; keep both: together they are your sponsor credential",
            "macaroon": minted.macaroon_b64, "token": minted.macaroon_b64, "invoice": invoice.bolt11,
            "payment_hash": invoice.payment_hash, "price_sats": fee_sats, "sponsor_id": new_id,
            "valid_until": valid_until}
    if why:
        body["reason"], body["message"] = "post_used", f"{why}; {body['message']}"
    response = web.json_response(body, status=402)
    for name, value in challenge_headers(minted.macaroon_b64, invoice.bolt11):
        response.headers.add(name, value)
    return response


async def _source(request: web.Request) -> Any:
    """An uploaded tarball's bytes, or a git source from ``{"git": {url, commit, subdir}}``.
    Never a path: the coordinator's files are not the sponsor's to name."""
    if request.content_type in UPLOAD_TYPES:
        data = await request.read()
        from l402tui.bounty.package import PackagingError, UnpackLimits, scan

        limits = UnpackLimits.for_sponsor_upload(svc(request).cfg)
        try:  # a small upload may unpack to gigabytes: checked while decompressing, off the event loop
            await asyncio.to_thread(scan, data, limits)
        except PackagingError as exc:
            raise Invalid(f"the uploaded tarball was refused: {exc}", code="unsafe_upload") from None
        except Exception as exc:  # noqa: BLE001 - tarfile and gzip raise their own zoo for corrupt input
            raise Invalid(f"the upload is not a gzip tarball of a bounty folder ({type(exc).__name__})",
                          code="unsafe_upload") from None
        return data
    from l402tui.bounty.gitsource import GitSource, GitSourceRefused

    body = await json_body(request)
    try:
        return GitSource.from_json(body.get("git"))
    except GitSourceRefused as exc:
        raise Invalid(str(exc), code=exc.code) from None


async def sponsor_create_bounty(request: web.Request) -> web.StreamResponse:
    from l402tui.coordinator.policy import INVITED, PAYING

    policy = _policy(request)
    credential: SponsorCredential | None = request.get(SPONSOR_KEY)
    if policy.who_may_post == "nobody":
        raise Forbidden("this coordinator takes no bounties from sponsors now (policy.who_may_post = nobody)",
                        code="posting_closed")
    refusal = await _isolation_refusal(svc(request))
    if refusal:  # before any fee: nothing is sold that cannot be served
        raise Unavailable(refusal, code="no_sandbox")
    if credential is None:
        if policy.may_post(PAYING):
            return await _challenge(request, None, policy.posting_fee_sats)
        raise Forbidden("this coordinator takes bounties from invited sponsors only; ask its operator for an invite "
                        "(`l402tui sponsor invite`)", code="invite_only")
    credential = _credential(request, "post")
    if credential.bounty_id is not None:
        raise Forbidden("this credential is limited to one bounty (a bounty_id caveat); post with the full one",
                        code="missing_capability")
    coord = svc(request)
    async with coord.transaction() as txn:  # reserve the post first: two uploads cannot share one fee
        reserved = await txn.execute(
            "UPDATE sponsor_tokens SET posts_used = posts_used + 1 WHERE token_id = ? AND "
            "(posts_allowed IS NULL OR posts_used < posts_allowed)", (credential.token_id,))
    if not reserved:
        if policy.may_post(PAYING):
            return await _challenge(request, credential.sponsor_id, policy.posting_fee_sats,
                                    why="this credential's posting fee was used for an earlier bounty")
        raise Forbidden("this credential has no posts left", code="no_posts_left")
    if credential.payment_hash is None and not policy.may_post(INVITED):
        await _give_back(coord, credential)
        raise Forbidden("this coordinator takes no invited postings now", code="posting_closed")
    try:
        result = await coord.create_bounty(await _source(request), self_funded=False)
    except Conflict as exc:
        await _give_back(coord, credential)
        if exc.code == "beyond_hold_window":
            raise Conflict(f"{exc.message.split('; create it')[0]}; shorten reward.duration_hours (a sponsor's "
                           "pool is always held by a hold invoice)", code=exc.code) from None
        raise
    except L402TuiError as exc:
        await _give_back(coord, credential)  # fix the bounty and post again without paying twice
        raise _without_our_paths(exc, coord) from None
    except BaseException:
        await _give_back(coord, credential)
        raise
    bounty_id = result["bounty"]["id"]
    # Not in the bounty's own transaction: a crash between the two leaves an unowned draft whose
    # funding invoice nobody has seen; it expires unpaid and the bounty is cancelled.  No money moves.
    async with coord.transaction() as txn:
        await txn.insert("sponsor_bounties", {"bounty_id": bounty_id, "sponsor_id": credential.sponsor_id,
                                              "token_id": credential.token_id, "created_at": time.time()})
        await txn.event("sponsor.bounty_posted", bounty_id, sponsor_id=credential.sponsor_id)
    return web.json_response({**result, "sponsor_id": credential.sponsor_id}, status=201)


async def _give_back(coord: Coordinator, credential: SponsorCredential) -> None:
    async with coord.transaction() as txn:
        await txn.execute("UPDATE sponsor_tokens SET posts_used = posts_used - 1 WHERE token_id = ? AND posts_used > 0",
                          (credential.token_id,))


def _without_our_paths(exc: L402TuiError, coord: Coordinator) -> L402TuiError:
    """``exc`` with the coordinator's own folders taken out of its message and details: a
    problem in bounty.toml names the file as unpacked here (``<data>/bounties/.incoming-x/upload/
    bounty.toml:5``), which tells a stranger where the operator keeps its data.  The sponsor
    sees paths relative to its own folder."""
    roots = {str(coord.data_dir), str(coord.data_dir.resolve())}
    incoming = re.compile("(?:" + "|".join(re.escape(r) for r in sorted(roots, key=len, reverse=True)) +
                          r")(?:/bounties/\.incoming-[^/\s'\"]+(?:/(?:upload|tree|repo))?)?/?")

    def clean(value: Any) -> Any:
        if isinstance(value, str):
            return incoming.sub(lambda m: "" if m.group(0).endswith("/") else "your bounty folder", value)
        if isinstance(value, list):
            return [clean(v) for v in value]
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        return value

    exc.message = clean(exc.message)
    exc.args = (exc.message,)
    exc.details = clean(exc.details)
    return exc
