"""A read-only :class:`CoordinatorSource` over the coordinator's SQLite tables.

It lets the TUI show a database that some other process (``l402tui serve``, the
coordinator in-process) writes, and is what the panes are tested against with
seeded rows.  It never writes: sponsor actions raise :class:`ActionUnavailable`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path
from typing import Any, AsyncIterator

from l402tui.coordinator import operator_reads  # one log reader for the TUI and the admin API
from l402tui.coordinator.errors import NotFound
from l402tui.coordinator.payout_funding import pool_left
from l402tui.store import Store
from l402tui.tui.source import (BountyRow, CoordinatorSource, EvaluationRow, LedgerRow, SourceError,
                                SourceEvent, SubmissionRow)

PAID_PURPOSES = ("payout", "holdback")
INVOICE_KINDS = {"funding": "funding", "stake": "stake", "l402": "l402 fee", "claim": "claim"}


class StoreSource(CoordinatorSource):
    can_act = False

    def __init__(self, store: Store, poll_s: float = 1.0, description: str | None = None,
                 log_root: Path | None = None):
        self.store = store
        self.poll_s = poll_s
        # Where the evaluation worker writes logs line by line while a run is going
        # (<data_dir>/eval-logs/<id>/attempt-<n>/); the database sits in the data dir.
        self.log_root = log_root or Path(store.path).parent / "eval-logs"
        self.description = description or f"read-only: {_home_relative(store.path)}"

    @classmethod
    async def open(cls, db_path: Path | str, poll_s: float = 1.0, description: str | None = None) -> "StoreSource":
        return cls(await Store.open(db_path), poll_s=poll_s, description=description)

    async def close(self) -> None:
        await self.store.close()

    async def list_bounties(self) -> list[BountyRow]:
        rows = await self.store.fetchall(
            """
            SELECT b.*,
                   (SELECT COUNT(*) FROM submissions s WHERE s.bounty_id = b.id) AS n_submissions,
                   (SELECT i.bolt11 FROM invoices i WHERE i.payment_hash = b.funding_payment_hash) AS funding_bolt11
            FROM bounties b ORDER BY b.created_at DESC
            """
        )
        out = []
        for r in rows:
            metric = headline_metric(r["spec_json"])
            out.append(BountyRow(
                id=r["id"], name=r["name"], status=r["status"], metric=metric,
                pool_msat=r["pool_msat"] or 0,
                # The payout rule's own figure: the one the admin API and the service show.
                pool_left_msat=max(0, await pool_left(self.store, r)),
                baseline=score_of(r["baseline_json"], metric), best=score_of(r["best_json"], metric),
                deadline=r["deadline"], submissions=r["n_submissions"],
                funding_mode=r["funding_mode"] or "hold",
                funding_bolt11=r["funding_bolt11"] if r["status"] == "AWAITING_FUNDING" else None,
            ))
        return out

    async def list_submissions(self, bounty_id: str | None = None, limit: int = 10_000) -> list[SubmissionRow]:
        where, params = ("WHERE s.bounty_id = ?", [bounty_id]) if bounty_id else ("", [])
        rows = await self.store.fetchall(
            f"""
            SELECT s.id, s.bounty_id, s.status, s.claimed_score, s.verdict_json, s.reasons, s.created_at,
                   b.spec_json, COALESCE(p.paid, 0) AS paid
            FROM submissions s JOIN bounties b ON b.id = s.bounty_id
            LEFT JOIN (SELECT submission_id, SUM(amount_msat) AS paid FROM payments
                       WHERE purpose IN ('payout', 'holdback') AND status = 'COMPLETE'
                       GROUP BY submission_id) p ON p.submission_id = s.id
            {where} ORDER BY s.created_at DESC LIMIT ?
            """,
            [*params, limit],
        )
        metrics: dict[str, str] = {}
        out = []
        for r in rows:
            spec = r["spec_json"]
            metric = metrics.setdefault(spec, headline_metric(spec))
            out.append(SubmissionRow(
                id=r["id"], bounty_id=r["bounty_id"], status=r["status"], claimed_score=r["claimed_score"],
                heldout_score=score_of(r["verdict_json"], metric), reasons=r["reasons"] or "",
                payout_msat=r["paid"], created_at=r["created_at"],
            ))
        return out

    async def ledger(self, bounty_id: str | None = None, limit: int = 10_000) -> list[LedgerRow]:
        cond, params = ("AND bounty_id = ?", [bounty_id]) if bounty_id else ("", [])
        rows: list[LedgerRow] = []
        for r in await self.store.fetchall(
                f"SELECT * FROM invoices WHERE kind != 'l402' {cond} ORDER BY created_at DESC LIMIT ?",
                [*params, limit]):
            kind = invoice_kind(r["kind"], bool(r["is_hold"]))
            due = r["expires_at"] if r["status"] in ("OPEN", "ACCEPTED") else None
            detail = f"expires {fmt_time(due)}" if due is not None else ""
            rows.append(LedgerRow(r["created_at"], kind, r["status"], r["amount_msat"], r["bounty_id"],
                                  r["submission_id"], r["bolt11"], detail, due))
        for r in await self.store.fetchall(
                f"SELECT * FROM payments WHERE 1 {cond} ORDER BY created_at DESC LIMIT ?", [*params, limit]):
            detail, due = "", None
            if r["status"] == "FAILED" or (r["status"] == "PENDING" and r["last_error"]):
                detail = f"attempt {r['attempts']}: {r['last_error'] or 'failed'}"
            elif r["purpose"] == "holdback" and r["status"] == "PENDING" and r["next_attempt_at"]:
                due = r["next_attempt_at"]
                detail = f"release {fmt_time(due)}"
            rows.append(LedgerRow(r["created_at"], r["purpose"], r["status"], r["amount_msat"], r["bounty_id"],
                                  r["submission_id"], r["payment_hash"] or r["idempotency_key"], detail, due))
        entries = await self.store.fetchall(
            f"SELECT * FROM ledger_entries WHERE (account LIKE 'holdback:%' OR account LIKE 'fees:%') {cond} "
            "ORDER BY id DESC LIMIT ?", [*params, limit])
        releases = await self.store.fetchall(
            "SELECT subject_id, due_at, done_at FROM timers WHERE kind = 'holdback_release'")
        rows.extend(reservation_rows(entries, {r["subject_id"]: (r["due_at"], r["done_at"]) for r in releases}))
        rows.sort(key=lambda row: row.created_at, reverse=True)
        return rows[:limit]

    async def evaluations(self, limit: int = 200) -> list[EvaluationRow]:
        rows = await self.store.fetchall(
            "SELECT e.id, e.bounty_id, e.submission_id, e.kind, e.status, e.sandbox, e.created_at, e.started_at, "
            "e.finished_at, e.attempts, e.error, b.spec_json FROM evaluations e "
            "LEFT JOIN bounties b ON b.id = e.bounty_id "
            "ORDER BY (e.status = 'RUNNING') DESC, e.id DESC LIMIT ?", [limit])
        out = []
        for r in rows:
            spec = r.pop("spec_json")
            out.append(EvaluationRow(**{**r, "attempts": r["attempts"] or 0}, repeats=spec_repeats(spec)))
        return out

    async def eval_log(self, evaluation_id: int, offset: int = 0,
                       max_bytes: int = 1024 * 1024) -> tuple[list[str], int]:
        try:
            page = await operator_reads.eval_log_page(self.store, evaluation_id, offset, max_bytes,
                                                      log_root=self.log_root)
        except NotFound as exc:
            raise SourceError(str(exc)) from None
        return page["lines"], page["next_offset"]

    async def submission_detail(self, submission_id: str) -> dict[str, Any]:
        row = await self.store.fetchone(
            "SELECT id, bounty_id, status, claimed_score, verdict_json, reasons, created_at, updated_at "
            "FROM submissions WHERE id = ?", [submission_id])
        if row is None:
            raise SourceError(f"no submission {submission_id!r}")
        try:
            verdict = json.loads(row["verdict_json"]) if row["verdict_json"] else None
        except ValueError:
            verdict = {"unreadable": row["verdict_json"]}
        evaluation = await self.store.fetchone(
            "SELECT id, status, sandbox, error, metrics_json FROM evaluations WHERE submission_id = ? "
            "ORDER BY id DESC LIMIT 1", [submission_id])
        detail: dict[str, Any] = {"id": row["id"], "bounty_id": row["bounty_id"], "status": row["status"],
                                  "claimed_score": row["claimed_score"], "verdict": verdict,
                                  "reasons": [r for r in (row["reasons"] or "").split("; ") if r]}
        if evaluation:
            detail["evaluation"] = {"id": evaluation["id"], "status": evaluation["status"],
                                    "sandbox": evaluation["sandbox"], "error": evaluation["error"]}
        return detail

    async def submission_diff(self, submission_id: str) -> str:
        diff = await self.store.scalar("SELECT diff FROM submissions WHERE id = ?", [submission_id])
        if diff is None:
            raise SourceError(f"no submission {submission_id!r}")
        return diff

    async def events(self, after_id: int | None = None) -> AsyncIterator[SourceEvent]:
        last = after_id if after_id is not None else await self.last_event_id()
        while True:
            rows = await self.store.fetchall(
                "SELECT * FROM events WHERE id > ? ORDER BY id LIMIT 500", [last])
            for r in rows:
                last = r["id"]
                try:
                    payload = json.loads(r["payload_json"] or "{}")
                except ValueError:
                    payload = {"raw": r["payload_json"]}
                yield SourceEvent(r["id"], r["kind"], r["subject_id"], payload, r["created_at"])
            if len(rows) < 500:
                await asyncio.sleep(self.poll_s)

    async def last_event_id(self) -> int:
        return await self.store.scalar("SELECT COALESCE(MAX(id), 0) FROM events") or 0


def spec_repeats(spec_json: str | None) -> int | None:
    try:
        spec = json.loads(spec_json or "{}")
        value = spec.get("noise", {}).get("repeats") if isinstance(spec, dict) else None
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, int) and value > 0 else None


def reservation_rows(entries: list[dict[str, Any]],
                     releases: dict[str, tuple[float | None, float | None]]) -> list[LedgerRow]:
    """Holdbacks and fees live in the double-entry ledger, not as payments: one row per
    entry on a holdback or fee account, with the holdback's release time from its timer."""
    rows = []
    for e in entries:
        account, amount = e["account"], int(e["amount_msat"])
        sub = e.get("submission_id") or _submission_of(e.get("txn_id") or "")
        if account.startswith("fees:"):
            rows.append(LedgerRow(e["created_at"], "fee", "BOOKED", amount, e.get("bounty_id"), sub,
                                  e.get("txn_id") or "", e.get("memo") or ""))
            continue
        due, done = releases.get(sub or "", (None, None))
        if amount > 0:
            status = "RESOLVED" if done else "HELD"
            due = due if status == "HELD" and due else None
            detail = f"release {fmt_time(due)}" if due is not None else (e.get("memo") or "")
            rows.append(LedgerRow(e["created_at"], "holdback", status, amount, e.get("bounty_id"), sub,
                                  e.get("txn_id") or "", detail, due))
        else:
            rows.append(LedgerRow(e["created_at"], "holdback out", "BOOKED", -amount, e.get("bounty_id"), sub,
                                  e.get("txn_id") or "", e.get("memo") or ""))
    return rows


def _submission_of(txn_id: str) -> str | None:
    # Ledger transactions are named "<purpose>:<subject>"; for payouts the subject is the submission.
    head, _, subject = txn_id.partition(":")
    return subject if subject.startswith("s_") else None


def invoice_kind(kind: str, is_hold: bool) -> str:
    label = INVOICE_KINDS.get(kind, kind)
    return f"{label} hold" if is_hold and kind in ("funding", "stake") else label


def _home_relative(path: Path) -> str:
    try:
        return "~/" + str(path.resolve().relative_to(Path.home().resolve()))
    except ValueError:
        return str(path)


def headline_metric(spec_json: str | None) -> str:
    """The name of the heaviest metric in a stored spec (as in BountySpec.primary_metric)."""
    try:
        spec = json.loads(spec_json or "{}")
    except ValueError:
        return "score"
    if isinstance(spec, dict) and isinstance(spec.get("primary_metric"), str):
        return spec["primary_metric"]
    metrics = spec.get("metrics") if isinstance(spec, dict) else None
    if isinstance(metrics, list):
        named = [m for m in metrics if isinstance(m, dict) and m.get("name")]
        if named:
            return max(named, key=lambda m: float(m.get("weight", 1.0) or 0))["name"]
    if isinstance(spec, dict) and isinstance(spec.get("metric"), str):
        return spec["metric"]
    return "score"


def score_of(value_json: str | None, metric: str) -> float | None:
    """The headline number out of a stored baseline/best/verdict JSON, whichever shape it has."""
    if not value_json:
        return None
    try:
        value: Any = json.loads(value_json)
    except ValueError:
        return None
    return _find_score(value, metric)


def _find_score(value: Any, metric: str) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, dict):
        return None
    for key in ("heldout_score", "score", metric, "median", "value"):
        if key in value:
            found = _find_score(value[key], metric)
            if found is not None:
                return found
    for key in ("metrics", "heldout", "medians"):
        if isinstance(value.get(key), dict):
            found = _find_score(value[key], metric)
            if found is not None:
                return found
    return None


def fmt_time(ts: float | None) -> str:
    if ts is None:
        return "—"
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
