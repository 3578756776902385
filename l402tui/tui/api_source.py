"""A :class:`CoordinatorSource` over the coordinator's public surface.

The same adapter serves both ways of running: in-process it wraps the
``Coordinator`` service object, attached (``--attach URL``) it wraps
``HttpCoordinatorClient``; the two have the same methods and return the same
view dicts.  What only exists next to the database — evaluation logs, diffs, the
holdback release timers, the sponsor's review — is read from the store in-process
(``store_source``) and, attached, from the admin routes that serve the same rows
(``coordinator/operator_reads.py``) and the same review (``payouts.confirm_gaming``).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable

from l402tui.errors import L402TuiError
from l402tui.tui.source import (REVIEW_DECISIONS, ActionResult, ActionUnavailable, BountyRow, CoordinatorSource,
                                EvaluationRow, FundingRequest, LedgerRow, SourceError, SourceEvent, SubmissionRow,
                                WalletState)
from l402tui.tui.store_source import StoreSource, _find_score, fmt_time, invoice_kind, reservation_rows

Reviewer = Callable[[str, bool, str], Awaitable[None]]


class ApiSource(CoordinatorSource):
    can_act = True

    def __init__(self, api: Any, *, description: str, store_source: StoreSource | None = None,
                 reviewer: Reviewer | None = None, on_close: Callable[[], Awaitable[None]] | None = None,
                 http_url: str | None = None, wallet: Any = None):
        self.api = api
        self.wallet = wallet  # in-process: the coordinator's Lightning node (balances, sim deposits)
        self.http_url = http_url  # where agents reach this coordinator (the side panel's agent too)
        self.description = description
        self.local = store_source  # in-process only: logs, diffs, timers straight from the store
        self.has_eval_logs = store_source is not None or callable(getattr(api, "eval_log", None))
        self.reviewer = reviewer
        self._on_close = on_close
        self._metrics: dict[str, str] = {}  # bounty id -> headline metric name
        self._last_event: int | None = None  # attached: where the next event subscription resumes

    @property
    def attached(self) -> bool:
        """No store beside us: the admin API serves logs, diffs and timers."""
        return self.local is None

    async def _call(self, what: str, awaitable: Awaitable) -> Any:
        try:
            return await awaitable
        except SourceError:
            raise
        except Exception as exc:
            if not _expected(exc):
                raise  # a bug keeps its traceback
            message = str(exc) or type(exc).__name__
            raise SourceError(f"{what}: {message}") from exc

    # --- reads -----------------------------------------------------------------------
    async def list_bounties(self) -> list[BountyRow]:
        views = await self._call("list bounties", self.api.list_bounties(include_all=True))
        subs = await self._call("list submissions", self.api.list_submissions(limit=100_000))
        counts: dict[str, int] = {}
        for s in subs:
            counts[s["bounty_id"]] = counts.get(s["bounty_id"], 0) + 1
        rows = []
        for v in views:
            metric = (v.get("metric") or {}).get("name") or "score"
            self._metrics[v["id"]] = metric
            bolt11 = None
            if v["status"] == "AWAITING_FUNDING":
                funding = await self._call("funding invoice", self.api.funding(v["id"]))
                bolt11 = funding["invoice"] if funding else None
            rows.append(BountyRow(
                id=v["id"], name=v["name"], status=v["status"], metric=metric,
                pool_msat=int(v.get("pool_sats") or 0) * 1000, pool_left_msat=int(v.get("pool_left_sats") or 0) * 1000,
                baseline=_find_score(v.get("baseline"), metric), best=_find_score(v.get("best"), metric),
                deadline=v.get("deadline_unix"), submissions=counts.get(v["id"], 0),
                funding_mode=v.get("funding_mode") or "hold", funding_bolt11=bolt11))
        return rows

    async def list_submissions(self, bounty_id: str | None = None, limit: int = 10_000) -> list[SubmissionRow]:
        views = await self._call("list submissions", self.api.list_submissions(bounty_id, limit))
        payments = await self._call("list payments", self.api.payments(bounty_id, limit))
        paid: dict[str, int] = {}
        for p in payments:
            if p.get("submission_id") and p["purpose"] in ("payout", "holdback") and p["status"] == "COMPLETE":
                paid[p["submission_id"]] = paid.get(p["submission_id"], 0) + int(p["amount_msat"])
        if any(v["bounty_id"] not in self._metrics for v in views):
            await self.list_bounties()  # learn the headline metric of bounties we have not seen
        rows = []
        for v in views:
            reasons = v.get("reasons") or []
            rows.append(SubmissionRow(
                id=v["id"], bounty_id=v["bounty_id"], status=v["status"], claimed_score=v.get("claimed_score"),
                heldout_score=_find_score(v.get("verdict"), self._metrics.get(v["bounty_id"], "score")),
                reasons="; ".join(reasons) if isinstance(reasons, list) else str(reasons),
                payout_msat=paid.get(v["id"], 0), created_at=_unix(v.get("created_at"))))
        return rows

    async def ledger(self, bounty_id: str | None = None, limit: int = 10_000) -> list[LedgerRow]:
        page = await self._call("ledger", self.api.ledger_page(bounty_id, limit))  # one round trip attached
        invoices, payments = page["invoices"], page["payments"]
        timers = await self._holdback_timers()
        releases = {sid: due for sid, (due, done) in timers.items() if done is None and due is not None}
        rows = []
        for i in invoices:
            if i["kind"] == "l402":
                continue
            due = _unix(i["expires_at"]) if i["status"] in ("OPEN", "ACCEPTED") and i.get("expires_at") else None
            detail = f"expires {fmt_time(due)}" if i["status"] in ("OPEN", "ACCEPTED") else ""
            rows.append(LedgerRow(_unix(i["created_at"]), invoice_kind(i["kind"], bool(i.get("is_hold"))),
                                  i["status"], int(i["amount_msat"]), i.get("bounty_id"), i.get("submission_id"),
                                  i["bolt11"], detail, due))
        for p in payments:
            detail, due = "", None
            if p["status"] == "FAILED" or (p["status"] == "PENDING" and p.get("last_error")):
                detail = f"attempt {p.get('attempts', 0)}: {p.get('last_error') or 'failed'}"
            elif p["purpose"] == "holdback" and p.get("submission_id") in releases:
                due = _unix(releases[p["submission_id"]])
                detail = f"release {fmt_time(due)}"
            rows.append(LedgerRow(_unix(p["created_at"]), p["purpose"], p["status"], int(p["amount_msat"]),
                                  p.get("bounty_id"), p.get("submission_id"), p["idempotency_key"], detail, due))
        entries = [dict(e, created_at=_unix(e.get("created_at"))) for e in page["entries"]
                   if str(e.get("account", "")).startswith(("holdback:", "fees:"))]
        rows.extend(reservation_rows(entries, timers))
        rows.sort(key=lambda r: r.created_at, reverse=True)
        return rows[:limit]

    async def _holdback_timers(self) -> dict[str, tuple[float | None, float | None]]:
        """submission id -> (release due at, resolved at) of every holdback."""
        if self.local is not None:
            rows = await self.local.store.fetchall(
                "SELECT subject_id, due_at, done_at FROM timers WHERE kind = 'holdback_release'")
            return {r["subject_id"]: (r["due_at"], r["done_at"]) for r in rows}
        timers = await self._call("holdback timers", self.api.holdback_timers())
        return {t["submission_id"]: (t["release_at"], t["done_at"]) for t in timers}

    async def evaluations(self, limit: int = 200) -> list[EvaluationRow]:
        if self.local is not None:
            return await self.local.evaluations(limit)
        rows = await self._call("list evaluations", self.api.evaluations(limit))
        return [EvaluationRow(id=int(r["id"]), bounty_id=r["bounty_id"], submission_id=r.get("submission_id"),
                              kind=r["kind"], status=r["status"], sandbox=r.get("sandbox"),
                              created_at=_unix(r.get("created_at"))) for r in rows]

    async def eval_log(self, evaluation_id: int, offset: int = 0,
                       max_bytes: int = 1024 * 1024) -> tuple[list[str], int]:
        if self.local is not None:
            return await self.local.eval_log(evaluation_id, offset, max_bytes)
        page = await self._call(f"eval log #{evaluation_id}", self.api.eval_log(evaluation_id, offset, max_bytes))
        return list(page["lines"]), int(page["next_offset"])

    async def submission_detail(self, submission_id: str) -> dict[str, Any]:
        """The operator's view (GET /api/v1/admin/submissions/{id} attached; the service in-process)."""
        if callable(getattr(self.api, "submission_detail", None)):
            return await self._call(f"detail of {submission_id}", self.api.submission_detail(submission_id))
        if self.local is not None:
            return await self.local.submission_detail(submission_id)
        return {}

    async def submission_diff(self, submission_id: str) -> str:
        if self.local is not None:
            return await self.local.submission_diff(submission_id)
        return await self._call(f"diff of {submission_id}", self.api.submission_diff(submission_id))

    async def events(self, after_id: int | None = None) -> AsyncIterator[SourceEvent]:
        """Attached, a broken stream is not hidden: it ends with a SourceError (the app shows
        it, reloads and subscribes again), and the next subscription resumes after the last
        event this one delivered, so none is lost or repeated across the outage."""
        if after_id is None and self.attached:
            after_id = self._last_event
        if after_id is None:
            last = getattr(self.api, "last_event_id", None)
            after_id = await self._call("event stream", last()) if last is not None else 0
        if self.attached:
            self._last_event = after_id  # a stream that breaks before its first event resumes here
        stream = self.api.follow_events(after_id, reconnect=False) if self.attached else \
            self.api.follow_events(after_id)
        try:
            async for e in stream:
                self._last_event = int(e["id"])
                yield SourceEvent(int(e["id"]), e["kind"], e.get("subject_id"), e.get("payload") or {},
                                  _unix(e.get("created_at")))
        except Exception as exc:  # the daemon restarting, a dropped tunnel: say so, resume later
            if not self.attached or isinstance(exc, SourceError):
                raise
            raise SourceError(f"event stream: {exc}") from exc
        finally:
            await stream.aclose()

    # --- sponsor actions ---------------------------------------------------------------
    async def create_bounty(self, path: Path, self_funded: bool = False) -> ActionResult:
        result = await self._call(f"create from {path}",
                                  self.api.create_bounty(str(Path(path).expanduser().resolve()),
                                                         self_funded=self_funded))
        bounty = result.get("bounty", result)
        funding = result.get("funding") or {}
        if funding.get("invoice"):
            message = (f"created {bounty['name']} ({bounty['id']}): pay the funding invoice "
                       f"({funding.get('amount_sats', 0):,} sat) to open it — press f to see it")
        else:
            message = f"created {bounty['name']} ({bounty['id']}): {bounty['status']}"
        return ActionResult(message, bounty["id"], {"bolt11": funding.get("invoice")})

    async def fund_bounty(self, bounty_id: str) -> FundingRequest:
        funding = await self._call("funding invoice", self.api.funding(bounty_id))
        if not funding:
            raise SourceError(f"bounty {bounty_id} has no funding invoice: it is self-funded "
                              "(its pool is a ledger reservation) or was created before funding existed")
        if funding["status"] != "OPEN":
            raise SourceError(f"the funding invoice of {bounty_id} is {funding['status']}, not waiting for payment")
        return FundingRequest(bounty_id, "hold", int(funding["amount_sats"]) * 1000, funding["invoice"])

    async def review_submission(self, submission_id: str, decision: str, note: str = "") -> ActionResult:
        if decision not in REVIEW_DECISIONS:
            raise SourceError(f"unknown review decision {decision!r}; use one of {', '.join(REVIEW_DECISIONS)}")
        if self.reviewer is not None:
            await self._call(f"review {submission_id}", self.reviewer(submission_id, decision == "gaming", note))
        elif self.attached:
            await self._call(f"review {submission_id}", self.api.review_submission(submission_id, decision, note))
        else:
            raise ActionUnavailable("this coordinator build cannot review flagged submissions "
                                    "(its payouts module has no confirm_gaming)")
        verdict = "gaming confirmed: the stake is forfeited" if decision == "gaming" else \
            "not gaming: the stake is refunded"
        return ActionResult(f"{submission_id}: {verdict}", submission_id)

    async def close_bounty(self, bounty_id: str) -> ActionResult:
        view = await self._call(f"close {bounty_id}", self.api.close_bounty(bounty_id))
        return ActionResult(f"{bounty_id} is {view.get('status', 'closed')}; what is left goes back to the sponsor",
                            bounty_id)

    async def wallet_state(self) -> WalletState:
        """In-process from the coordinator's node; attached from GET /api/v1/admin/wallet (the
        daemon's agent wallets are not this TUI's to see)."""
        if self.wallet is not None:
            return await self._call("wallet", self.wallet.state())
        if self.attached and callable(getattr(self.api, "wallet", None)):
            w = await self._call("wallet", self.api.wallet())
            return WalletState({"coordinator": int(w["balance_msat"])}, float(w["hold_window_s"]),
                               backend=str(w.get("backend") or ""), node=str(w.get("alias") or w.get("node_id") or ""),
                               can_deposit=False, can_invoice=True)
        return WalletState()

    async def wallet_balances(self) -> dict[str, int | None]:
        return (await self.wallet_state()).balances

    async def hold_window_s(self) -> float | None:
        return (await self.wallet_state()).hold_window_s

    async def deposit(self, amount_msat: int, wallet: str = "coordinator") -> ActionResult:
        if self.wallet is None or not self.wallet.can_deposit:
            return await super().deposit(amount_msat, wallet)
        balance = await self._call("deposit", self.wallet.deposit(amount_msat, wallet))
        return ActionResult(f"deposited {amount_msat // 1000:,} sat: the {wallet} wallet holds "
                            f"{balance // 1000:,} sat")

    async def deposit_invoice(self, amount_msat: int) -> str:
        if self.wallet is not None:
            return await self._call("deposit invoice", self.wallet.invoice(amount_msat))
        if self.attached and callable(getattr(self.api, "wallet_invoice", None)):
            page = await self._call("deposit invoice", self.api.wallet_invoice(max(1, amount_msat // 1000)))
            return page["bolt11"]
        return await super().deposit_invoice(amount_msat)

    async def close(self) -> None:
        if self._on_close is not None:
            await self._on_close()


def _unix(value: Any) -> float:
    """Views carry ISO times (attached) or unix seconds (rows); the panes want seconds."""
    if value is None:
        return 0.0
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def _expected(exc: BaseException) -> bool:
    """What the coordinator refused or the network did: shown as a line, not a traceback."""
    from aiohttp import ClientError

    return isinstance(exc, (L402TuiError, OSError, TimeoutError, ClientError))
