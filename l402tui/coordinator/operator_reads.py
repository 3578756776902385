"""What only the operator (the sponsor's side) may read: evaluation logs, diffs, holdback timers.

These never go to agents — an evaluation log of the untrusted phase may echo
held-out inputs, a diff is the agent's work — so the admin API serves them behind
the admin macaroon, and the in-process TUI reads the same rows.  Plain functions
over the store: the HTTP handlers only translate.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from l402tui.coordinator import ledger
from l402tui.coordinator.errors import Invalid, NotFound
from l402tui.store.db import Store, now

LOG_PAGE_DEFAULT = 256 * 1024
LOG_PAGE_MAX = 1024 * 1024  # one response never carries more than this much log
HOLDBACK_TIMER = "holdback_release"  # the kind stability.schedule writes
FINISHED_EVALUATION = ("DONE", "FAILED")


async def list_evaluations(store: Store, *, limit: int = 200, bounty_id: str | None = None,
                           submission_id: str | None = None) -> list[dict[str, Any]]:
    """Newest first, a running evaluation before all others (it is what a sponsor watches)."""
    cond, params = [], []
    if bounty_id:
        cond.append("bounty_id = ?")
        params.append(bounty_id)
    if submission_id:
        cond.append("submission_id = ?")
        params.append(submission_id)
    where = f"WHERE {' AND '.join(cond)}" if cond else ""
    return await store.fetchall(
        "SELECT id, bounty_id, submission_id, kind, heldout_set, status, sandbox, attempts, error, "
        f"created_at, started_at, finished_at FROM evaluations {where} "
        "ORDER BY (status = 'RUNNING') DESC, id DESC LIMIT ?", [*params, int(limit)])


async def eval_log_page(store: Store, evaluation_id: int, offset: int = 0,
                        max_bytes: int = LOG_PAGE_DEFAULT, log_root: Path | None = None) -> dict[str, Any]:
    """Whole log lines of one evaluation from byte ``offset`` of its logs (required tests,
    then each repeat, as they are written), at most about ``max_bytes`` (capped at
    :data:`LOG_PAGE_MAX`); ``next_offset`` is where to go on.  The TUI reads through this
    too, so a log reads the same in-process and attached."""
    if offset < 0:
        raise ValueError("offset must be >= 0")
    row = await store.fetchone("SELECT status, attempts FROM evaluations WHERE id = ?", [evaluation_id])
    if row is None:
        raise NotFound(f"no evaluation #{evaluation_id}; GET /api/v1/admin/evaluations lists them",
                       code="unknown_evaluation")
    status = row["status"]
    # The attempt's folder has the logs while they are written (eval_runs rows only appear
    # once a repeat is done); evaluations from before the folder existed fall back to eval_runs.
    root = log_root or eval_log_root(store)
    paths = await asyncio.to_thread(attempt_logs, root, evaluation_id, row["attempts"] or 0)
    if not paths:
        runs = await store.fetchall(
            "SELECT repeat, log_path FROM eval_runs WHERE evaluation_id = ? AND log_path IS NOT NULL "
            "ORDER BY repeat", [evaluation_id])
        paths = [(r["repeat"], Path(r["log_path"])) for r in runs]
    finished = status in FINISHED_EVALUATION
    budget = max(1, min(int(max_bytes), LOG_PAGE_MAX))
    lines, next_offset = await asyncio.to_thread(read_log_segments, paths, offset, finished, budget)
    lines = [TESTS_HEADER if line == RAW_TESTS_HEADER else line for line in lines]
    return {"evaluation_id": evaluation_id, "status": status, "lines": lines, "offset": offset,
            "next_offset": next_offset, "finished": finished}


RAW_TESTS_HEADER = "── repeat tests · tests.log ──"  # what read_log_segments heads the tests' log with
TESTS_HEADER = "── required tests · tests.log ──"


def eval_log_root(store: Store) -> Path:
    """<data_dir>/eval-logs, where the evaluation worker writes (the database sits in the data dir)."""
    return Path(store.path).parent / "eval-logs"


def attempt_logs(root: Path, evaluation_id: int, attempt: int) -> list[tuple[Any, Path]]:
    """The log files of one attempt in the order they are written: the required tests,
    then each repeat.  Empty when the folder does not exist (yet, or any more).  Links
    are skipped: only files the worker wrote are served."""
    folder = root / str(int(evaluation_id)) / f"attempt-{int(attempt)}"
    try:
        names = [p.name for p in folder.iterdir() if p.is_file() and not p.is_symlink()]
    except OSError:
        return []
    out: list[tuple[Any, Path]] = []
    if "tests.log" in names:
        out.append(("tests", folder / "tests.log"))
    repeats = []
    for name in names:
        number = name.removeprefix("repeat-").removesuffix(".log")
        if name.startswith("repeat-") and name.endswith(".log") and number.isdigit():
            repeats.append(int(number))
    out.extend((n, folder / f"repeat-{n}.log") for n in sorted(repeats))  # numbered as eval_runs numbers them
    return out


def read_log_segments(paths: list[tuple[Any, Path]], offset: int, finished: bool,
                      max_bytes: int = 1024 * 1024) -> tuple[list[str], int]:
    """Read whole lines from the concatenation of per-repeat log files, from byte ``offset``.

    A header line marks the start of each repeat's log.  A trailing partial line is
    left for the next call unless no more bytes can come after it (the evaluation
    finished, or another repeat's log follows)."""
    lines: list[str] = []
    start = 0
    consumed = offset
    for i, (repeat, path) in enumerate(paths):
        try:
            size = path.stat().st_size
        except OSError:
            size = 0
        end = start + size
        if consumed > end or (consumed == end and size > 0):
            start = end
            continue
        budget = max_bytes - (consumed - offset)
        if budget <= 0:
            break
        local = consumed - start
        data = b""
        if size - local > 0:
            with path.open("rb") as fh:
                fh.seek(local)
                data = fh.read(min(size - local, budget))
        complete = local + len(data) >= size
        more_follows = finished or i + 1 < len(paths)
        cut = data.rfind(b"\n") + 1
        if cut < len(data) and complete and more_follows:
            cut = len(data)
        elif cut == 0 and not complete:
            cut = len(data)  # one line longer than a whole batch: pass it on in pieces
        if local == 0 and cut:
            lines.append(f"── repeat {repeat} · {path.name} ──")
        lines.extend(data[:cut].decode("utf-8", errors="replace").splitlines())
        consumed = start + local + cut
        if consumed < end or (size == 0 and not more_follows):
            break
        start = end
    return lines, consumed


async def submission_diff(store: Store, submission_id: str) -> dict[str, Any]:
    row = await store.fetchone("SELECT id, bounty_id, status, diff, diff_sha256 FROM submissions WHERE id = ?",
                               [submission_id])
    if row is None:
        raise NotFound(f"no submission {submission_id!r}; GET /api/v1/admin/submissions lists them",
                       code="unknown_submission")
    return {"submission_id": row["id"], "bounty_id": row["bounty_id"], "status": row["status"],
            "diff": row["diff"] or "", "diff_sha256": row["diff_sha256"]}


async def holdback_timers(store: Store, bounty_id: str | None = None) -> list[dict[str, Any]]:
    """Every 20 % holdback with its release time, amount and where it stands:
    HELD (waiting for its time), CHECKING (due; the stability re-evaluation runs),
    RELEASED (owed or paid to the agent), FORFEITED (back in the pool) or RESOLVED
    (the timer is done with nothing held, e.g. a 0-msat holdback)."""
    cond, params = ("AND s.bounty_id = ?", [bounty_id]) if bounty_id else ("", [])
    rows = await store.fetchall(
        "SELECT t.subject_id, t.due_at, t.done_at, t.created_at, s.bounty_id, s.status AS submission_status "
        "FROM timers t JOIN submissions s ON s.id = t.subject_id "
        f"WHERE t.kind = ? {cond} ORDER BY t.due_at", [HOLDBACK_TIMER, *params])
    at = now()
    out = []
    for r in rows:
        sid, account = r["subject_id"], ledger.holdback(r["bounty_id"])
        reserved = await store.scalar(
            "SELECT COALESCE(SUM(amount_msat), 0) FROM ledger_entries WHERE account = ? AND submission_id = ? "
            "AND amount_msat > 0", [account, sid])
        if await ledger.posted(store, f"holdback_release:{sid}"):
            state = "RELEASED"
        elif await ledger.posted(store, f"holdback_forfeit:{sid}"):
            state = "FORFEITED"
        elif r["done_at"] is not None:
            state = "RESOLVED"
        else:
            state = "CHECKING" if r["due_at"] <= at else "HELD"
        out.append({"submission_id": sid, "bounty_id": r["bounty_id"], "state": state,
                    "amount_msat": int(reserved or 0),
                    "held_msat": await ledger.balance(store, account, submission_id=sid),
                    "release_at": r["due_at"], "done_at": r["done_at"], "created_at": r["created_at"],
                    "submission_status": r["submission_status"]})
    return out


async def payouts_state(store: Store) -> dict[str, Any]:
    """Whether payouts are halted (and why), and the payments only an operator can decide."""
    unknown = await store.fetchall("SELECT idempotency_key FROM payments WHERE status = 'UNKNOWN' "
                                   "ORDER BY created_at")
    return {"halted": await ledger.halted_reason(store),
            "unknown_payments": [r["idempotency_key"] for r in unknown]}


async def wallet_state(backend: Any, hold_window_s: float) -> dict[str, Any]:
    """The coordinator's Lightning wallet as the operator sees it: spendable balance, how long
    a funding hold can be held on this backend (longer deadlines must be self-funded), and
    whether this backend can mint test money (only the simulated network can)."""
    status = await backend.status()
    return {"balance_msat": int(status.balance_msat), "hold_window_s": float(hold_window_s),
            "backend": status.backend, "node_id": status.node_id, "alias": status.alias,
            "network": status.network, "can_deposit": status.backend == "sim"}


DEPOSIT_INVOICE_EXPIRY_S = 3600
DEPOSIT_MAX_MSAT = 10**8 * 1000 * 21  # no more than all bitcoin: a typo is refused, not invoiced


async def deposit_invoice(backend: Any, amount_msat: int) -> dict[str, Any]:
    """A plain invoice of the coordinator's node to pay from another wallet (how a real
    node is funded: there is nothing to mint)."""
    if not 0 < int(amount_msat) <= DEPOSIT_MAX_MSAT:
        raise Invalid("amount must be more than 0 msat and at most 21 million bitcoin", code="invalid_request")
    invoice = await backend.create_invoice(int(amount_msat), "deposit to the l402tui coordinator wallet",
                                           DEPOSIT_INVOICE_EXPIRY_S)
    return {"bolt11": invoice.bolt11, "payment_hash": invoice.payment_hash, "amount_msat": invoice.amount_msat,
            "expires_at": invoice.expires_at}
