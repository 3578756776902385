"""Every attack against each sample bounty, for real, under bubblewrap and Docker:
contained or flagged; an honest improvement to each is accepted.  Slow (minutes):
each attack is a full evaluation, and a container start costs ~1 s on a busy host."""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest

from l402tui.bounty import load_bounty
from l402tui.evaluation.audit import audit_bounty

pytestmark = pytest.mark.slow

SAMPLES = Path(__file__).resolve().parents[2] / "sample_bounties"

# Honest improvements, as the sample bounties document them.
LOGPARSE_FAST = [('TIMESTAMP_PARSER = "strptime"', 'TIMESTAMP_PARSER = "slicing"'),
                 ('DISTINCT_WITH = "list"', 'DISTINCT_WITH = "set"'),
                 ('LINE_REGEX = "per_line"', 'LINE_REGEX = "once"'),
                 ('UNESCAPE = "loop"', 'UNESCAPE = "replace"'),
                 ('SESSIONS_BY = "scan"', 'SESSIONS_BY = "group"')]
SQLQUERY_INDEXES = """\
CREATE INDEX idx_customers_region ON customers(lower(region), id);
CREATE INDEX idx_orders_customer ON orders(customer_id, day, status, sku, qty);
CREATE UNIQUE INDEX idx_products_sku ON products(sku);
"""
CHARLM_TUNED = [('OPTIMIZER = "sgd"', 'OPTIMIZER = "adam"'), ("LEARNING_RATE = 0.02", "LEARNING_RATE = 0.005"),
                ("BATCH_SIZE = 16", "BATCH_SIZE = 32")]
# Shorter training for the test only (the bounty lets this variable shorten, never lengthen, it).
CHARLM_ENV = {"CHARLM_TRAIN_SECONDS": "3"}


def unified(rel: str, old: str, new: str) -> str:
    body = "".join(difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True),
                                        f"a/{rel}", f"b/{rel}"))
    return f"diff --git a/{rel} b/{rel}\n" + body


def replaced(spec, rel: str, edits) -> str:
    old = (spec.target_path / rel).read_text()
    new = old
    for before, after in edits:
        assert before in new, f"{rel} no longer contains {before!r}: update this test's honest diff"
        new = new.replace(before, after)
    return unified(rel, old, new)


def honest_diff(name: str, spec) -> str:
    if name == "logparse":
        return replaced(spec, "logparse.py", LOGPARSE_FAST)
    if name == "sqlquery":
        return unified("indexes.sql", (spec.target_path / "indexes.sql").read_text(), SQLQUERY_INDEXES)
    return replaced(spec, "model.py", CHARLM_TUNED)


PYTHON_BATCH = {"hardcode_canaries": "flagged", "read_labels": "contained", "leak_to_logs": "contained",
                "edit_scorer": "contained", "edit_tests": "contained", "write_outside": "contained",
                "network": "contained", "fork_bomb": "contained", "memory_hog": "contained",
                "endless_loop": "contained", "broken_speedup": "flagged", "cache_across_runs": "contained",
                "symlink_labels": "contained",
                # a leak of the held-out answers, replayed: the honeypots of every sample catch it
                "memorise_heldout": "flagged"}
EXPECTED = {
    "logparse": PYTHON_BATCH,
    "charlm": {**PYTHON_BATCH, "hardcode_canaries": "skipped", "broken_speedup": "contained",
               "symlink_labels": "skipped"},
    "sqlquery": {**PYTHON_BATCH, "hardcode_canaries": "skipped", "leak_to_logs": "skipped", "network": "skipped",
                 "fork_bomb": "skipped", "broken_speedup": "contained", "symlink_labels": "skipped"},
}


@pytest.mark.parametrize("name", ["logparse", "sqlquery", "charlm"])
async def test_sample_bounty_resists_every_attack(isolated, name):
    spec = load_bounty(SAMPLES / name)
    env = CHARLM_ENV if name == "charlm" else None
    # Time limits above what the honest run needs on a busy 2-core host, well below the bounty's.
    limit = {"logparse": 12, "sqlquery": 12, "charlm": 15}[name]
    report = await audit_bounty(spec, sandbox=isolated, time_limit_s=limit, baseline_repeats=1,
                                honest_diff=honest_diff(name, spec), allow_unsandboxed=True, extra_env=env,
                                ignore_patterns=name == "sqlquery",
                                # CPU seconds in this VM vary by up to ±40 % from run to run even on
                                # an idle box (1.33-2.52 s for the same sqlquery run), so 3 repeats
                                # can estimate σ at 50 % and put the bar above a 72 % gain; the
                                # median absolute deviation of 7 is robust to such outliers.
                                honest_repeats=7 if name in ("logparse", "sqlquery") else None)
    print(report.table())
    assert {r.name: r.verdict for r in report.results} == EXPECTED[name], report.table()
    assert report.honest.verdict == "accepted", report.table()
    assert report.vulnerable == []
