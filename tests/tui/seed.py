"""Seeded coordinator rows for TUI tests and screenshots: what a day of a small
coordinator looks like (three bounties in different states, submissions in every
verdict, a ledger with holds, payouts, a pending holdback and a refund, one
evaluation with a log on disk)."""

from __future__ import annotations

import json
from pathlib import Path

from l402tui.store import open_sync

NOW = 1_796_000_000.0  # a fixed "now" (2026-11-30) so snapshots never drift
HOUR = 3600.0

SPEC = {"name": "logparse", "noise": {"repeats": 3, "k_sigma": 3.0}, "metrics": [{"name": "f1", "direction": "maximize", "weight": 1.0},
                                        {"name": "wall_s", "direction": "minimize", "weight": 0.0,
                                         "guard": True}]}
SPEC_LM = {"name": "charlm", "metrics": [{"name": "val_bpb", "direction": "minimize", "weight": 1.0}]}

DIFF = """--- a/parser.py
+++ b/parser.py
@@ -1,4 +1,4 @@
 import re
-PATTERN = re.compile(r"(\\w+)=(\\S+)")
+PATTERN = re.compile(r"(\\w+)=(\\"[^\\"]*\\"|\\S+)")
 def parse(line):
     return dict(PATTERN.findall(line))
"""


def seed(db_path: Path, log_dir: Path, now: float = NOW, running: bool = False) -> None:
    db = open_sync(db_path)
    bounties = [
        ("b_logparse01", "logparse", "OPEN", SPEC, 100_000_000, now + 3 * 24 * HOUR, {"f1": 0.812},
         {"f1": 0.861}, "hold", "h_fund1"),
        ("b_charlm0002", "charlm", "AWAITING_FUNDING", SPEC_LM, 250_000_000, now + 7 * 24 * HOUR,
         {"val_bpb": 2.104}, None, "hold", "h_fund2"),
        ("b_sortbench3", "sortbench", "CLOSED", SPEC, 20_000_000, now - 2 * HOUR, {"f1": 0.5}, {"f1": 0.55},
         "self", None),
    ]
    for i, (bid, name, status, spec, pool, deadline, base, best, mode, fund_hash) in enumerate(bounties):
        db["bounties"].insert({
            "id": bid, "name": name, "status": status, "spec_json": json.dumps(spec), "pool_msat": pool,
            "funding_mode": mode, "funding_payment_hash": fund_hash, "deadline": deadline,
            "baseline_json": json.dumps({"metrics": base}), "best_json": json.dumps({"metrics": best}) if best else None,
            "created_at": now - (10 - i) * HOUR, "updated_at": now - HOUR,
        })
    subs = [
        ("s_accepted01", "b_logparse01", "PAID_PARTIAL", 0.87, {"heldout_score": 0.861}, "improvement 6.0 % > 3σ"),
        ("s_flagged002", "b_logparse01", "FLAGGED", 0.95, {"heldout_score": 0.79},
         "claimed 0.95 but held-out 0.79: public/held-out gap 17 %; canary string in output"),
        ("s_rejected03", "b_logparse01", "REJECTED", 0.83, {"heldout_score": 0.815}, "improvement 0.4 % < min 1 %"),
        ("s_queued0004", "b_logparse01", "EVALUATING" if running else "QUEUED", 0.88, None, ""),
        ("s_sortpaid05", "b_sortbench3", "PAID_FULL", 0.56, {"heldout_score": 0.55}, "stability re-eval held"),
    ]
    for i, (sid, bid, status, claimed, verdict, reasons) in enumerate(subs):
        db["submissions"].insert({
            "id": sid, "bounty_id": bid, "status": status, "diff": DIFF, "diff_sha256": "0" * 64,
            "claimed_score": claimed, "verdict_json": json.dumps(verdict) if verdict else None,
            "reasons": reasons, "created_at": now - (5 - i) * HOUR, "updated_at": now - HOUR,
        })
    db["invoices"].insert_all([
        {"payment_hash": "h_fund1", "kind": "funding", "bolt11": "lnbcrt1075u1pfund1qqsp5seededinvoice",
         "amount_msat": 107_500_000, "is_hold": 1, "status": "SETTLED", "bounty_id": "b_logparse01",
         "created_at": now - 9 * HOUR, "updated_at": now - 3 * HOUR, "expires_at": now + 12 * HOUR},
        {"payment_hash": "h_fund2", "kind": "funding", "bolt11": "lnbcrt2687u1pfund2qqsp5awaitingpayment",
         "amount_msat": 268_750_000, "is_hold": 1, "status": "OPEN", "bounty_id": "b_charlm0002",
         "created_at": now - 8 * HOUR, "updated_at": now - 8 * HOUR, "expires_at": now + HOUR},
        {"payment_hash": "h_stake2", "kind": "stake", "bolt11": "lnbcrt50u1pstake2",
         "amount_msat": 5_000_000, "is_hold": 1, "status": "ACCEPTED", "bounty_id": "b_logparse01",
         "submission_id": "s_flagged002", "created_at": now - 4 * HOUR, "updated_at": now - 4 * HOUR,
         "expires_at": now + 20 * HOUR},
        {"payment_hash": "h_l402", "kind": "l402", "bolt11": "lnbcrt210n1pl402", "amount_msat": 21_000,
         "is_hold": 0, "status": "SETTLED", "bounty_id": "b_logparse01", "created_at": now - 6 * HOUR},
    ])
    db["payments"].insert_all([
        {"idempotency_key": "payout:s_accepted01:1", "bounty_id": "b_logparse01", "submission_id": "s_accepted01",
         "purpose": "payout", "amount_msat": 44_400_000, "fee_msat": 1000, "status": "COMPLETE",
         "payment_hash": "p_payout1", "attempts": 1, "created_at": now - 3 * HOUR},
        {"idempotency_key": "refund:b_sortbench3", "bounty_id": "b_sortbench3", "purpose": "refund",
         "amount_msat": 9_000_000, "status": "COMPLETE", "payment_hash": "p_refund3", "attempts": 1,
         "created_at": now - HOUR},
        {"idempotency_key": "payout:s_sortpaid05:1", "bounty_id": "b_sortbench3", "submission_id": "s_sortpaid05",
         "purpose": "payout", "amount_msat": 8_800_000, "status": "COMPLETE", "payment_hash": "p_payout5",
         "attempts": 1, "created_at": now - 2 * HOUR},
    ])
    # The payouts engine's double-entry books for the accepted submission: pool -> payout owed,
    # pool -> holdback (released by a timer), pool -> coordinator fee.
    db["ledger_entries"].insert_all([
        {"txn_id": f"{txn}:{bid}", "account": account, "amount_msat": amount, "bounty_id": bid,
         "submission_id": sub, "memo": memo, "created_at": now - at * HOUR}
        for txn, bid, sub, account, amount, memo, at in [
            ("fund", "b_logparse01", None, "sponsor_funding:b_logparse01", -100_000_000, "funded (hold)", 9),
            ("fund", "b_logparse01", None, "pool:b_logparse01", 100_000_000, "funded (hold)", 9),
            ("payout", "b_logparse01", "s_accepted01", "pool:b_logparse01", -44_400_000, "improvement 6 %", 3),
            ("payout", "b_logparse01", "s_accepted01", "owed:s_accepted01", 44_400_000, "improvement 6 %", 3),
            ("payout", "b_logparse01", "s_accepted01", "pool:b_logparse01", -11_100_000, "improvement 6 %", 3),
            ("payout", "b_logparse01", "s_accepted01", "holdback:b_logparse01", 11_100_000, "improvement 6 %", 3),
            ("payout", "b_logparse01", "s_accepted01", "pool:b_logparse01", -4_500_000, "coordinator fee", 3),
            ("payout", "b_logparse01", "s_accepted01", "fees:coordinator", 4_500_000, "coordinator fee", 3),
        ]])
    db["timers"].insert({"kind": "holdback_release", "subject_id": "s_accepted01", "due_at": now + 45 * HOUR,
                         "created_at": now - 3 * HOUR})
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / "eval-1-r0.log"
    log.write_text("".join(f"[run] step {i:03d} loss={2.5 - i * 0.01:.3f}\n" for i in range(60))
                   + "[score] f1=0.861 wall_s=4.2\n")
    db["evaluations"].insert({
        "id": 1, "bounty_id": "b_logparse01", "submission_id": "s_accepted01", "kind": "submission",
        "heldout_set": 0, "status": "DONE", "metrics_json": json.dumps({"f1": 0.861}), "sandbox": "bwrap",
        "created_at": now - 4 * HOUR, "started_at": now - 4 * HOUR, "finished_at": now - 3.9 * HOUR,
    })
    db["eval_runs"].insert({"evaluation_id": 1, "repeat": 0, "log_path": str(log), "exit_code": 0})
    db["events"].insert_all([
        {"kind": "bounty.status", "subject_id": "b_logparse01", "payload_json": json.dumps({"status": "OPEN"}),
         "created_at": now - 9 * HOUR},
        {"kind": "submission.status", "subject_id": "s_flagged002",
         "payload_json": json.dumps({"status": "FLAGGED"}), "created_at": now - 2 * HOUR},
    ])
    db.conn.commit()
    db.close()


def seed_running_evaluation(db_path: Path, *, started_at: float = NOW - 8, repeats_done: int = 1) -> Path:
    """An evaluation of s_queued0004 that is RUNNING: its attempt folder holds the required
    tests' log, ``repeats_done`` finished repeats and the repeat now being written, as the
    evaluation worker leaves them (<data_dir>/eval-logs/<id>/attempt-1/); no eval_runs row yet."""
    folder = db_path.parent / "eval-logs" / "2" / "attempt-1"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tests.log").write_text("[tests] 12 passed in 0.41s\n")
    for r in range(repeats_done):
        (folder / f"repeat-{r}.log").write_text("".join(f"[run] batch {i:02d} f1={0.80 + i / 100:.2f}\n"
                                                        for i in range(6)) + "[score] f1=0.866\n")
    (folder / f"repeat-{repeats_done}.log").write_text("[run] batch 00 f1=0.80\n[run] batch 01 f1=0.81\n")
    db = open_sync(db_path)
    with db.conn:
        db["submissions"].update("s_queued0004", {"status": "EVALUATING"})
        db["evaluations"].insert({
            "id": 2, "bounty_id": "b_logparse01", "submission_id": "s_queued0004", "kind": "submission",
            "heldout_set": 0, "status": "RUNNING", "sandbox": "bwrap", "attempts": 1,
            "created_at": started_at - 1, "started_at": started_at})
    db.close()
    return folder
