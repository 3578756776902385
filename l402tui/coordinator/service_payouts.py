"""The coordinator service's money operations: the sponsor's review of a flagged
submission, claims, an operator's repairs (an UNKNOWN payment, a halt), and the calls
into the payouts engine (``coordinator/payouts.py``) after the service's own transitions.

HTTP handlers, the TUI in-process, the demo and the CLI reach payouts only through these
methods; the engine's functions take the store, the backend and the configuration.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Awaitable

from l402tui.coordinator import ledger, lifecycle, operator_reads, payouts
from l402tui.coordinator.errors import Conflict, Invalid
from l402tui.coordinator.payout_sender import PayoutsHalted

if TYPE_CHECKING:
    from l402tui.config import Config
    from l402tui.lightning.backend import LightningBackend
    from l402tui.store import Store

log = logging.getLogger("l402tui.coordinator")

REVIEW_DECISIONS = {"accept": False, "gaming": True}  # the sponsor's decision -> gaming confirmed
NOTE_MAX = 2000
_RESUME_HINT = "see GET /api/v1/admin/payouts, then POST /api/v1/admin/payouts/resume"


class PayoutOperations:
    """The money side of :class:`l402tui.coordinator.service.Coordinator`."""

    cfg: "Config"
    store: "Store"
    backend: "LightningBackend"

    async def _halted_hint(self, awaitable: Awaitable[Any]) -> Any:
        try:
            return await awaitable
        except PayoutsHalted as exc:
            raise PayoutsHalted(f"{exc}; {_RESUME_HINT}") from None

    async def _after_transition(self, what: str, awaitable: Awaitable[Any]) -> Any:
        """Payouts work that follows a committed transition: a failure is logged, and the tick
        (or the next start) runs it again, so the transition itself is never lost."""
        try:
            return await awaitable
        except Exception:  # noqa: BLE001 - every payouts step is idempotent and retried
            log.exception("payouts: %s failed; it is retried by the tick and at the next start", what)
            return None

    async def review(self, submission_id: str, decision: str, note: str = "") -> dict[str, Any]:
        """The sponsor's word on a FLAGGED submission: ``accept`` (the stake is refunded) or
        ``gaming`` (the stake is forfeited to the pool).  The same decision again is a harmless
        retry; the opposite one is refused."""
        if not isinstance(decision, str) or decision not in REVIEW_DECISIONS:
            raise Invalid(f"'decision' must be one of {', '.join(REVIEW_DECISIONS)} (got {decision!r})",
                          code="invalid_request")
        if not isinstance(note, str) or len(note) > NOTE_MAX:
            raise Invalid(f"'note' must be a string of at most {NOTE_MAX} characters", code="invalid_request")
        await lifecycle.submission_row(self.store, submission_id)  # 404 with the usual message
        confirmed = REVIEW_DECISIONS[decision]
        await self._halted_hint(payouts.confirm_gaming(self.store, self.backend, self.cfg, submission_id,
                                                       confirmed, note))
        return {"submission_id": submission_id, "decision": decision, "gaming_confirmed": confirmed, "note": note,
                "submission": await self.submission_detail(submission_id)}  # type: ignore[attr-defined]

    async def claim(self, submission_id: str, token_id: str, bolt11: str) -> dict[str, Any]:
        """An agent's invoice for exactly one amount owed to its submission (payout, released
        holdback, the refundable part of a stake); only the token that submitted may claim."""
        row = await lifecycle.submission_row(self.store, submission_id)
        if row["token_id"] != token_id:
            raise Conflict("only the token that made this submission can claim its payout", code="not_your_submission")
        if not isinstance(bolt11, str) or not bolt11.lower().startswith("ln"):
            raise Invalid("'invoice' must be a BOLT11 invoice for the amount owed", code="invalid_invoice")
        return await payouts.claim(self.store, self.backend, self.cfg, submission_id, bolt11)

    async def claim_refund(self, bounty_id: str, bolt11: str) -> dict[str, Any]:
        """The sponsor's invoice for exactly one refund owed on ``bounty_id``."""
        if not isinstance(bolt11, str) or not bolt11.strip():
            raise Invalid("give {'invoice': '<BOLT11 invoice for exactly the amount owed>'}", code="invalid_request")
        await lifecycle.bounty_row(self.store, bounty_id)
        return await self._halted_hint(payouts.claim_refund(self.store, self.backend, self.cfg, bounty_id, bolt11))

    async def resolve_payment(self, key: str, *, sent: bool, fee_msat: int = 0) -> dict[str, Any]:
        """An operator's verdict on an UNKNOWN payment after checking the node by hand: ``sent``
        books it as paid (with the routing fee the node reports); otherwise it is retried."""
        if not isinstance(sent, bool):
            raise Invalid("'sent' must be true (the node shows it paid) or false (it did not leave: retry it)",
                          code="invalid_request")
        if isinstance(fee_msat, bool) or not isinstance(fee_msat, int) or not 0 <= fee_msat < 2**62:
            raise Invalid("'fee_msat' must be a non-negative integer (the routing fee the node reports)",
                          code="invalid_request")
        return await self._halted_hint(payouts.resolve_unknown(self.store, self.backend, self.cfg, key, sent=sent,
                                                               fee_msat=fee_msat))

    async def payouts_state(self) -> dict[str, Any]:
        """Whether payouts are halted (and why), and the payments in state UNKNOWN."""
        return await operator_reads.payouts_state(self.store)

    async def resume_payouts(self, note: str) -> dict[str, Any]:
        """Resume payouts after a halt, once the books are checked again; ``note`` (what was
        wrong and how it was fixed) goes into the event log."""
        if not isinstance(note, str) or not note.strip():
            raise Invalid("give {'note': '<what was wrong and how it was fixed>'}: it goes into the event log",
                          code="invalid_request")
        if await ledger.halted_reason(self.store) is None:
            return {"halted": None, "resumed": False}
        try:
            await ledger.resume(self.store, note.strip())
        except ledger.InvariantBroken as exc:
            raise Conflict("the books still do not balance; payouts stay halted until they do",
                           code="books_do_not_balance", details={"problems": exc.problems}) from None
        return {"halted": None, "resumed": True}

    async def payout_summary(self, submission_id: str) -> dict[str, Any]:
        return await payouts.payout_summary(self.store, submission_id)
