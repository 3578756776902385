"""What the TUI needs from a coordinator, as one abstract interface.

The TUI never reaches into the coordinator's internals: it asks a
:class:`CoordinatorSource` for rows and events, and asks it to carry out sponsor
actions.  Implementations: :class:`~l402tui.tui.store_source.StoreSource` (read-only,
over the SQLite tables) and adapters over the in-process coordinator service or the
HTTP admin API when attached to a daemon.  No Textual here: this is plain data.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator

# The validation layer sits below the source (it only parses folders); re-exported here.
from l402tui.bounty.validation import ValidationReport, validate_folder


class SourceError(Exception):
    """A request the source could not carry out; the message says why and what to do."""


class ActionUnavailable(SourceError):
    """The source cannot perform this action at all (a read-only source, say)."""


@dataclass(frozen=True)
class BountyRow:
    id: str
    name: str
    status: str
    metric: str  # the headline metric's name, e.g. "val_bpb"
    pool_msat: int
    pool_left_msat: int
    baseline: float | None
    best: float | None
    deadline: float | None  # unix seconds
    submissions: int
    funding_mode: str = "hold"
    funding_bolt11: str | None = None  # the funding hold invoice while AWAITING_FUNDING


@dataclass(frozen=True)
class SubmissionRow:
    id: str
    bounty_id: str
    status: str
    claimed_score: float | None
    heldout_score: float | None
    reasons: str
    payout_msat: int  # paid so far (both tranches)
    created_at: float


@dataclass(frozen=True)
class LedgerRow:
    """One money movement or reservation as a sponsor reads it (not a raw ledger entry)."""

    created_at: float
    kind: str  # funding hold | stake | payout | holdback | refund | fee | l402
    status: str
    amount_msat: int
    bounty_id: str | None
    submission_id: str | None
    reference: str  # payment hash, idempotency key or BOLT11 invoice: what you would copy
    detail: str = ""  # e.g. "release 2026-11-29 10:00 UTC"
    due_at: float | None = None  # the time in ``detail`` ("release …", "expires …"): the table says "in 1d 23h"


@dataclass(frozen=True)
class EvaluationRow:
    id: int
    bounty_id: str
    submission_id: str | None
    kind: str
    status: str
    sandbox: str | None
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    attempts: int = 0
    repeats: int | None = None  # how many measured repeats the bounty asks for
    error: str | None = None


@dataclass(frozen=True)
class SourceEvent:
    id: int
    kind: str  # e.g. "bounty.status", "submission.status", "payment.complete"
    subject_id: str | None
    payload: dict[str, Any]
    created_at: float


@dataclass(frozen=True)
class FundingRequest:
    bounty_id: str
    mode: str  # hold | self
    amount_msat: int
    bolt11: str | None  # the hold invoice to pay, when mode == "hold"


@dataclass(frozen=True)
class ActionResult:
    message: str
    subject_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class WalletState:
    """What a source knows of the wallets: balances (msat; None when not known from here)
    and what the coordinator's backend can do."""

    balances: dict[str, int | None] = field(default_factory=dict)
    hold_window_s: float | None = None
    backend: str = ""  # sim | cln | "" (not known)
    node: str = ""  # the coordinator node's id or alias
    can_deposit: bool = False  # the simulated network mints test money
    can_invoice: bool = False  # the coordinator's node issues an invoice to pay from elsewhere
    agent_need_msat: int = 0  # what the agent needs to take part once (a download and a submission)


REVIEW_DECISIONS = ("accept", "gaming")


class CoordinatorSource(abc.ABC):
    """Everything the TUI reads from and asks of a coordinator."""

    #: shown in the status line: where the data comes from
    description: str = ""
    #: whether sponsor actions (create, fund, review, close) can be carried out
    can_act: bool = False
    #: whether evaluation logs can be read (they never leave the coordinator's machine)
    has_eval_logs: bool = True

    # --- reads -------------------------------------------------------------------
    @abc.abstractmethod
    async def list_bounties(self) -> list[BountyRow]: ...

    @abc.abstractmethod
    async def list_submissions(self, bounty_id: str | None = None, limit: int = 10_000) -> list[SubmissionRow]: ...

    @abc.abstractmethod
    async def ledger(self, bounty_id: str | None = None, limit: int = 10_000) -> list[LedgerRow]: ...

    @abc.abstractmethod
    async def evaluations(self, limit: int = 200) -> list[EvaluationRow]: ...

    @abc.abstractmethod
    async def eval_log(self, evaluation_id: int, offset: int = 0,
                       max_bytes: int = 1024 * 1024) -> tuple[list[str], int]:
        """Log lines of one evaluation from byte ``offset``; returns (lines, next offset).

        Only whole lines are returned, so following a growing log never splits one; at
        most about ``max_bytes`` per call, so a huge log arrives in bounded batches."""

    @abc.abstractmethod
    async def submission_diff(self, submission_id: str) -> str: ...

    async def submission_detail(self, submission_id: str) -> dict[str, Any]:
        """The operator's view of one submission (whole verdict, free-text reasons, payouts);
        sources that know more override this.  Empty when nothing more is known."""
        return {}

    async def wallet_balances(self) -> dict[str, int | None]:
        """Spendable msat per wallet the TUI can see ("coordinator", "agent"); None: unknown."""
        return {}

    async def hold_window_s(self) -> float | None:
        """How long a funding hold invoice can stay held on this backend (None: no limit known)."""
        return None

    async def wallet_state(self) -> WalletState:
        """Balances and what the coordinator's wallet can do (deposit, invoice) in one read."""
        return WalletState(await self.wallet_balances(), await self.hold_window_s())

    async def deposit(self, amount_msat: int, wallet: str = "coordinator") -> ActionResult:
        """Put money in a wallet (only the simulated network can mint it)."""
        raise ActionUnavailable("only the simulated network can deposit from here; on a real node, pay an "
                                "invoice of the coordinator's node from another wallet")

    async def deposit_invoice(self, amount_msat: int) -> str:
        """A BOLT11 invoice of the coordinator's node for ``amount_msat``, to pay from another wallet."""
        raise ActionUnavailable(self._read_only("make an invoice of the coordinator's node"))

    @abc.abstractmethod
    def events(self, after_id: int | None = None) -> AsyncIterator[SourceEvent]:
        """Every state change after event ``after_id`` (None: from now on) as it
        happens; runs until cancelled."""

    # --- sponsor actions ---------------------------------------------------------
    async def validate_bounty(self, path: Path) -> ValidationReport:
        """Check a bounty folder without creating anything (local: parses bounty.toml)."""
        return await validate_folder(path)

    async def create_bounty(self, path: Path, self_funded: bool = False) -> ActionResult:
        """Publish the bounty in ``path``; hold-funded unless ``self_funded`` (the operator pays)."""
        raise ActionUnavailable(self._read_only("create a bounty"))

    async def fund_bounty(self, bounty_id: str) -> FundingRequest:
        """The funding hold invoice the sponsor must pay for a bounty AWAITING_FUNDING."""
        raise ActionUnavailable(self._read_only("fund a bounty"))

    async def review_submission(self, submission_id: str, decision: str, note: str = "") -> ActionResult:
        raise ActionUnavailable(self._read_only("review a submission"))

    async def close_bounty(self, bounty_id: str) -> ActionResult:
        raise ActionUnavailable(self._read_only("close a bounty"))

    async def close(self) -> None:
        return None

    def _read_only(self, what: str) -> str:
        return (f"cannot {what}: {self.description or 'this source'} is read-only; "
                "run `l402tui` with the coordinator in-process or attach to `l402tui serve`")
