"""The agent's side of the coordinator API: find, pay for and download a bounty, submit,
follow the verdict, claim payouts with invoices from the agent's own wallet.

Paid routes go through :class:`l402tui.l402.client.L402Client`, which pays a 402 from the
wallet within ``agent.spend_cap_sats``.  Claims use the token that made the submission
(the coordinator only pays that token's holder), for exactly the amounts the
submission view lists as owed (``payouts.payments`` awaiting a claim).
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from l402tui.domain import CLAIMABLE, DECIDED, PAYABLE  # noqa: F401 - PAYABLE: read by the session
from l402tui.errors import Conflict, L402TuiError, Unavailable, Unreachable
from l402tui.l402.client import L402Client, L402ClientError, Response, SpendingCapExceeded
from l402tui.lightning.backend import LightningBackend, LightningError, PaymentState

FINAL = DECIDED  # a verdict reached: waiting ends
IN_FLIGHT = ("PENDING", "UNKNOWN")  # sent, outcome not known yet: neither claim again nor count it


# What the agent's callers catch: every refusal (the l402tui.errors class of its status),
# an unreachable coordinator (Unreachable) and what the agent itself refuses to do.
RemoteError = L402TuiError


@dataclass(frozen=True)
class RemoteBounty:
    """What the agent needs from ``GET /api/v1/bounties/{id}``."""

    id: str
    name: str
    status: str
    primary_metric: str | None
    baseline: dict[str, float]  # held-out medians measured by the coordinator ({} until measured)
    best: dict[str, float]  # the current best's medians (the baseline until a submission is accepted)
    min_improvement: float
    pool_left_sats: int
    package_sha256: str
    raw: dict[str, Any] = field(repr=False, default_factory=dict)

    @classmethod
    def from_view(cls, view: dict[str, Any]) -> "RemoteBounty":
        baseline = view.get("baseline") or {}
        best = view.get("best") or baseline
        return cls(view["id"], view.get("name", view["id"]), view.get("status", ""),
                   (view.get("metric") or {}).get("name"),
                   dict(baseline.get("metrics") or {}), dict(best.get("metrics") or {}),
                   float((view.get("target") or {}).get("min_improvement") or 0.0),
                   int(view.get("pool_left_sats") or 0), (view.get("package") or {}).get("sha256", ""), view)


def _error(response: Response, what: str) -> L402TuiError:
    error = response.error(what)
    error.message = f"{error.message} (HTTP {response.status})"
    error.args = (error.message,)
    return error


class CoordinatorClient:
    """One coordinator at ``base_url``, paid from ``wallet``."""

    def __init__(self, base_url: str, wallet: LightningBackend, *, spend_cap_sats: int,
                 max_fee_msat: int | None = None):
        self.base = base_url.rstrip("/")
        self.wallet = wallet
        self.http = L402Client(wallet, spend_cap_sats=spend_cap_sats, max_fee_msat=max_fee_msat)

    async def __aenter__(self) -> "CoordinatorClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def close(self) -> None:
        await self.http.close()

    @property
    def spent_sats(self) -> int:
        return self.http.spent_msat // 1000

    def url(self, path: str) -> str:
        return self.base + path

    async def _call(self, method: str, path: str, what: str, ok: tuple[int, ...] = (200,), **kw: Any) -> Response:
        try:
            response = await self.http.request(method, self.url(path), **kw)
        except L402ClientError as exc:
            raise type(exc)(f"{what}: {exc}", code=exc.code) from None
        except Unreachable as exc:
            raise Unreachable(f"{what}: {exc}; is `l402tui serve` running there?") from None
        if response.status not in ok:
            raise _error(response, what)
        return response

    # discovery (free) ------------------------------------------------------------------------

    async def bounties(self) -> list[RemoteBounty]:
        response = await self._call("GET", "/api/v1/bounties", "listing bounties")
        return [RemoteBounty.from_view(v) for v in response.json().get("bounties", [])]

    async def first_open_bounty(self) -> RemoteBounty:
        """The first OPEN bounty with pool left (for an agent started without --bounty)."""
        for bounty in await self.bounties():
            if bounty.status == "OPEN" and bounty.pool_left_sats > 0:
                return bounty
        raise Unavailable(f"{self.base} has no OPEN bounty with pool left; try again later", code="no_open_bounty")

    async def bounty(self, bounty_id: str) -> RemoteBounty:
        response = await self._call("GET", f"/api/v1/bounties/{bounty_id}", f"reading bounty {bounty_id}")
        return RemoteBounty.from_view(response.json())

    # paid ------------------------------------------------------------------------------------

    async def download(self, bounty_id: str, expected_sha256: str | None = None) -> bytes:
        """Pay (once per token) and download the package; checks its sha256 against the listing."""
        response = await self._call("GET", f"/api/v1/bounties/{bounty_id}/package", f"downloading {bounty_id}")
        digest = hashlib.sha256(response.body).hexdigest()
        for claimed in (expected_sha256, response.headers.get("X-Package-SHA256")):
            if claimed and claimed != digest:
                raise Conflict(f"the package of {bounty_id} hashes to {digest}, but the coordinator "
                               f"published {claimed}; not using it", code="package_mismatch")
        return response.body

    async def submit(self, bounty_id: str, diff: str, *, claimed_score: float | None = None,
                     payout_destination: str | None = None) -> dict[str, Any]:
        """Submit a diff; pays the submit price and, if the bounty asks for a stake, the stake
        hold invoice (returned to the agent unless the submission is flagged for gaming)."""
        body: dict[str, Any] = {"diff": diff, "claimed_score": claimed_score}
        if payout_destination:
            body["payout_destination"] = payout_destination
        response = await self._call("POST", f"/api/v1/bounties/{bounty_id}/submissions",
                                    f"submitting to {bounty_id}", ok=(200, 201, 202), json=body)
        view = response.json()
        stake = view.get("stake")
        if stake and stake.get("invoice") and view.get("status") == "AWAITING_STAKE":
            await self._pay_stake(bounty_id, stake)
        return view

    async def _pay_stake(self, bounty_id: str, stake: dict[str, Any]) -> None:
        amount_sats = int(stake.get("amount_sats") or 0)
        cap = self.http.spend_cap_sats * 1000
        if self.http.spent_msat + amount_sats * 1000 > cap:
            raise SpendingCapExceeded(f"the stake of {amount_sats} sats for {bounty_id} would exceed the spending "
                                      f"cap of {self.http.spend_cap_sats} sats; raise agent.spend_cap_sats")
        # A hold invoice: the payment is PENDING until the coordinator settles (gaming) or
        # cancels (refund) it after the verdict.
        try:
            payment = await self.wallet.pay(stake["invoice"], max_fee_msat=self.http.max_fee_msat)
        except LightningError as exc:
            raise Unavailable(f"paying the stake of {amount_sats} sats for {bounty_id} failed: {exc}", code="payment_failed") from None
        if payment.state is PaymentState.FAILED:
            raise Unavailable(f"paying the stake of {amount_sats} sats for {bounty_id} failed: {payment.error}",
                              code="payment_failed")
        self.http.spent_msat += amount_sats * 1000 + payment.fee_msat

    # following -------------------------------------------------------------------------------

    async def submission(self, submission_id: str) -> dict[str, Any]:
        response = await self._call("GET", f"/api/v1/submissions/{submission_id}", f"reading {submission_id}")
        return response.json()

    async def wait_for_verdict(self, submission_id: str, *, poll_s: float = 1.0,
                               timeout_s: float | None = None) -> dict[str, Any]:
        """Poll until the submission reaches a verdict; returns its view."""
        loop = asyncio.get_running_loop()
        ends = None if timeout_s is None else loop.time() + timeout_s
        while True:
            view = await self.submission(submission_id)
            if view.get("status") in FINAL:
                return view
            if ends is not None and loop.time() >= ends:
                raise Unavailable(f"no verdict for {submission_id} after {timeout_s:g} s "
                                  f"(status {view.get('status')})", code="no_verdict")
            await asyncio.sleep(poll_s)

    # claiming --------------------------------------------------------------------------------

    def _credential(self, bounty_id: str) -> str:
        parts = urlsplit(self.url(f"/api/v1/bounties/{bounty_id}/submissions"))
        credential = self.http.tokens.get((f"{parts.scheme}://{parts.netloc}", parts.path))
        if not credential:
            raise Conflict(f"no L402 token for {bounty_id}'s submissions in this session; claims need "
                           "the token that submitted", code="no_token")
        return credential

    async def payout_rows(self, submission_id: str) -> list[dict[str, Any]]:
        """The coordinator's payout, holdback and stake refund payments for this submission."""
        payouts = (await self.submission(submission_id)).get("payouts") or {}
        rows = payouts.get("payments", []) if isinstance(payouts, dict) else payouts
        return [p for p in rows if p.get("purpose") in ("payout", "holdback", "stake_refund")]

    async def owed(self, submission_id: str) -> list[dict[str, Any]]:
        """Payments the coordinator owes for this submission and waits to be claimed."""
        return [p for p in await self.payout_rows(submission_id) if p.get("status") in CLAIMABLE]

    async def _post_claim(self, submission_id: str, bounty_id: str, bolt11: str) -> Response:
        headers = {"Authorization": f"L402 {self._credential(bounty_id)}"}
        try:
            return await self.http.post(self.url(f"/api/v1/submissions/{submission_id}/claim"),
                                        json={"invoice": bolt11}, headers=headers)
        except Unreachable as exc:
            raise Unreachable(f"claiming {submission_id}: {exc}") from None

    async def claim(self, submission_id: str, bounty_id: str) -> list[dict[str, Any]]:
        """Claim everything owed now: one invoice from our wallet per amount; returns the
        coordinator's payment rows."""
        paid = []
        for owed in await self.owed(submission_id):
            amount = int(owed["amount_msat"])
            invoice = await self.wallet.create_invoice(
                amount, f"l402tui {owed.get('purpose', 'payout')} for {submission_id}", 3600)
            response = await self._post_claim(submission_id, bounty_id, invoice.bolt11)
            if response.status != 200:
                raise _error(response, f"claiming {amount} msat for {submission_id}")
            paid.append(response.json())
        return paid
