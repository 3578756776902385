"""Versioned schema migrations, applied in order on open.

``PRAGMA user_version`` holds the number of migrations applied.  A migration is a
function of a :class:`sqlite_utils.Database`; it runs inside one transaction with
the version bump, so a crash mid-migration leaves the old version intact.
Never edit a released migration: add a new one.
"""

from __future__ import annotations

from typing import Callable

from l402tui.store.lean_imports import import_sqlite_utils

sqlite_utils = import_sqlite_utils()

Migration = Callable[[sqlite_utils.Database], None]


def _m001_core(db: sqlite_utils.Database) -> None:
    db["bounties"].create(
        {
            "id": str,
            "name": str,
            "status": str,  # DRAFT AWAITING_FUNDING OPEN CLOSED SETTLED CANCELED
            "spec_json": str,
            "source_dir": str,
            "package_path": str,
            "package_sha256": str,
            "package_size": int,
            "pool_msat": int,
            "funding_mode": str,  # hold | self
            "funding_payment_hash": str,
            "deadline": float,
            "baseline_json": str,
            "best_json": str,
            "created_at": float,
            "updated_at": float,
        },
        pk="id",
        not_null={"name", "status", "spec_json", "pool_msat", "created_at", "updated_at"},
        defaults={"funding_mode": "hold"},
    )
    db["heldout_commitments"].create(
        {
            "bounty_id": str,
            "set_index": int,
            "set_name": str,
            "manifest_json": str,
            "salt_hex": str,
            "commitment_hex": str,
            "revealed_at": float,
        },
        pk=("bounty_id", "set_index"),
        foreign_keys=[("bounty_id", "bounties", "id")],
    )
    db["submissions"].create(
        {
            "id": str,
            "bounty_id": str,
            "token_id": str,
            "status": str,
            "diff": str,
            "diff_sha256": str,
            "claimed_score": float,
            "payout_destination": str,
            "stake_payment_hash": str,
            "verdict_json": str,
            "reasons": str,
            "created_at": float,
            "updated_at": float,
        },
        pk="id",
        not_null={"bounty_id", "status", "diff", "created_at", "updated_at"},
        foreign_keys=[("bounty_id", "bounties", "id")],
    )
    db["submissions"].create_index(["bounty_id", "status"])
    db["evaluations"].create(
        {
            "id": int,
            "bounty_id": str,
            "submission_id": str,
            "kind": str,  # baseline | submission | stability | audit
            "heldout_set": int,
            "status": str,  # QUEUED RUNNING DONE FAILED
            "metrics_json": str,  # medians per metric
            "spread_json": str,  # stdev per metric
            "sandbox": str,
            "attempts": int,
            "error": str,
            "created_at": float,
            "started_at": float,
            "finished_at": float,
        },
        pk="id",
        not_null={"bounty_id", "kind", "status", "created_at"},
        defaults={"attempts": 0},
    )
    db["evaluations"].create_index(["status"])
    db["eval_runs"].create(
        {
            "evaluation_id": int,
            "repeat": int,
            "metrics_json": str,
            "wall_s": float,
            "cpu_s": float,
            "peak_rss_kb": int,
            "exit_code": int,
            "log_path": str,
        },
        pk=("evaluation_id", "repeat"),
        foreign_keys=[("evaluation_id", "evaluations", "id")],
    )
    db["invoices"].create(
        {
            "payment_hash": str,
            "kind": str,  # l402 | funding | stake | claim
            "bolt11": str,
            "amount_msat": int,
            "is_hold": int,
            "status": str,  # OPEN ACCEPTED SETTLED CANCELED EXPIRED PAID
            "preimage": str,
            "bounty_id": str,
            "submission_id": str,
            "expires_at": float,
            "created_at": float,
            "updated_at": float,
        },
        pk="payment_hash",
        not_null={"kind", "bolt11", "amount_msat", "status", "created_at"},
        defaults={"is_hold": 0},
    )
    db["payments"].create(
        {
            "idempotency_key": str,
            "bounty_id": str,
            "submission_id": str,
            "purpose": str,  # payout | holdback | refund | claim
            "destination": str,
            "bolt11": str,
            "amount_msat": int,
            "fee_msat": int,
            "status": str,  # PENDING COMPLETE FAILED
            "attempts": int,
            "last_error": str,
            "payment_hash": str,
            "preimage": str,
            "next_attempt_at": float,
            "created_at": float,
            "updated_at": float,
        },
        pk="idempotency_key",
        not_null={"purpose", "amount_msat", "status", "created_at"},
        defaults={"attempts": 0, "fee_msat": 0},
    )
    db["ledger_entries"].create(
        {
            "id": int,
            "txn_id": str,
            "account": str,
            "amount_msat": int,  # signed: debit positive, credit negative; each txn sums to 0
            "bounty_id": str,
            "submission_id": str,
            "memo": str,
            "created_at": float,
        },
        pk="id",
        not_null={"txn_id", "account", "amount_msat", "created_at"},
    )
    db["ledger_entries"].create_index(["txn_id"])
    db["ledger_entries"].create_index(["bounty_id"])
    db["l402_root_keys"].create(
        {
            "key_id": str,  # hex sha256(macaroon identifier)
            "root_key": bytes,
            "token_id": str,
            "payment_hash": str,
            "bounty_id": str,
            "capabilities": str,
            "created_at": float,
        },
        pk="key_id",
        not_null={"root_key", "created_at"},
    )
    db["agent_experiments"].create(
        {
            "id": int,
            "bounty_id": str,
            "commit_sha": str,
            "metric": float,
            "memory_gb": float,
            "status": str,  # keep | discard | crash
            "description": str,
            "created_at": float,
        },
        pk="id",
    )
    db["events"].create(
        {
            "id": int,
            "kind": str,
            "subject_id": str,
            "payload_json": str,
            "created_at": float,
        },
        pk="id",
        not_null={"kind", "created_at"},
    )


def _m002_revocation_and_timers(db: sqlite_utils.Database) -> None:
    # Revoking a token keeps its row (for audit) instead of deleting it.
    db["l402_root_keys"].add_column("revoked_at", float)
    # Timers are rows so that holdback releases and deadlines survive restarts.
    db["timers"].create(
        {
            "id": int,
            "kind": str,  # holdback_release | bounty_deadline | funding_expiry
            "subject_id": str,
            "due_at": float,
            "done_at": float,
            "created_at": float,
        },
        pk="id",
        not_null={"kind", "subject_id", "due_at", "created_at"},
    )
    db["timers"].create_index(["kind", "subject_id"], unique=True)
    db["timers"].create_index(["due_at"])


def _m003_coordinator_indexes(db: sqlite_utils.Database) -> None:
    # The daily submission limit counts a token's submissions per bounty on every submit.
    db["submissions"].create_index(["bounty_id", "token_id", "created_at"])
    # The coordinator reconciles evaluations with submissions on every tick.
    db["evaluations"].create_index(["submission_id"])
    db["invoices"].create_index(["kind", "status"])


def _m004_verdict_integrity(db: sqlite_utils.Database) -> None:
    # A reason code from a closed list: all an agent may learn of why an evaluation failed
    # (the operator's ``error`` text can quote what the run controlled).
    db["evaluations"].add_column("reason_code", str)
    # A digest of each repeat's outputs: two submissions with identical held-out outputs.
    db["eval_runs"].add_column("outputs_sha256", str)


def _m005_derived_root_keys(db: sqlite_utils.Database) -> None:
    # How ``l402_root_keys.root_key`` is to be read (l402/rootkeys.py): 'derived' (a check value;
    # the key is HMAC(master file, identifier)), 'sealed' (an old random key XOR-ed with a pad
    # from the master), NULL (an old random key in the clear, sealed at the next start).
    db["l402_root_keys"].add_column("key_kind", str)


def _m006_store_findings(db: sqlite_utils.Database) -> None:
    # What a start-up check or a reconciliation with the Lightning node found that the
    # operator must see (lost writes, a paid token the store forgot, a hold nobody can
    # settle).  A row stays open until the operator acknowledges it; `wallet ledger
    # --check` fails while any is open.
    db["store_findings"].create(
        {
            "id": int,
            "kind": str,  # lost_writes | l402_token_lost | hold_orphaned | state_differs | ...
            "payment_hash": str,
            "bounty_id": str,
            "amount_msat": int,
            "message": str,  # what happened and what to do
            "action": str,  # what the reconciliation did about it, if anything
            "found_at": float,
            "acknowledged_at": float,
            "note": str,
        },
        pk="id",
        not_null={"kind", "message", "found_at"},
    )
    db["store_findings"].create_index(["kind", "payment_hash"])


def _m007_public_metrics(db: sqlite_utils.Database) -> None:
    # One run on the public set beside the held-out repeats: the judge's overfit check
    # compares the public gain with the held-out gain.
    db["evaluations"].add_column("public_metrics_json", str)


def _m008_sponsors(db: sqlite_utils.Database) -> None:
    # Sponsors who are not the operator (l402/sponsor.py): who they are, the credentials
    # minted for them (a paid one carries one post; an invited one as many as the operator
    # allowed), and which bounties each posted.  A sponsor's routes read only its rows here.
    db["sponsors"].create(
        {"id": str, "name": str, "origin": str, "created_at": float, "revoked_at": float},  # origin: invite | paid
        pk="id", not_null={"origin", "created_at"},
    )
    db["sponsor_tokens"].create(
        {"token_id": str, "sponsor_id": str, "payment_hash": str, "posts_allowed": int, "posts_used": int,
         "created_at": float},  # posts_allowed NULL: no limit (an invite)
        pk="token_id", not_null={"sponsor_id", "posts_used", "created_at"},
        foreign_keys=[("sponsor_id", "sponsors", "id")],
    )
    db["sponsor_bounties"].create(
        {"bounty_id": str, "sponsor_id": str, "token_id": str, "created_at": float},
        pk="bounty_id", not_null={"sponsor_id", "created_at"},
        foreign_keys=[("sponsor_id", "sponsors", "id")],
    )
    db["sponsor_bounties"].create_index(["sponsor_id"])


def _m009_unpaid_challenges(db: sqlite_utils.Database) -> None:
    # Unpaid L402 challenges are pruned once their invoice has expired (l402/unpaid.py): their
    # invoice rows are found by expiry, and the token rows by the payment hash they were sold for.
    db["invoices"].create_index(["kind", "status", "expires_at"])
    db["l402_root_keys"].create_index(["payment_hash"])


MIGRATIONS: list[Migration] = [_m001_core, _m002_revocation_and_timers, _m003_coordinator_indexes,
                               _m004_verdict_integrity, _m005_derived_root_keys, _m006_store_findings,
                               _m007_public_metrics, _m008_sponsors, _m009_unpaid_challenges]
LATEST = len(MIGRATIONS)


def schema_version(db: sqlite_utils.Database) -> int:
    return db.execute("PRAGMA user_version").fetchone()[0]


def migrate(db: sqlite_utils.Database, target: int = LATEST) -> int:
    """Apply pending migrations up to ``target``; returns the resulting version."""
    current = schema_version(db)
    if current > LATEST:
        raise RuntimeError(
            f"database schema version {current} is newer than this l402tui ({LATEST}); upgrade l402tui"
        )
    for version in range(current, target):
        with db.atomic():  # one transaction per migration, including the version bump
            MIGRATIONS[version](db)
            db.execute(f"PRAGMA user_version = {version + 1}")
    return schema_version(db)
