"""sample_bounties/sqlquery: validates, runs by the contract, guard and canary behave."""

from __future__ import annotations

import json
import lzma
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from l402tui.evaluation.antigaming import honeypot_flag
from tests.samples.contract import ROOT, evaluate, replace_in

BOUNTY = "sqlquery"

# What the search proposer can reach through the marks: index other columns.
SEARCHED = [("indexes.sql", "orders(status)", "orders(day)"), ("indexes.sql", "customers(segment)", "customers(id)")]
# What a person would write: a covering index for the join and an index on the lowered region.
BY_HAND = """
CREATE INDEX idx_customers_region ON customers(lower(region), id);
CREATE INDEX idx_orders_customer ON orders(customer_id, day, status, sku, qty);
CREATE UNIQUE INDEX idx_products_sku ON products(sku);
"""

COUNT_VM = """
import sqlite3, sys
steps = [0]
_connect = sqlite3.connect
def connect(*args, **kwargs):
    db = _connect(*args, **kwargs)
    def tick():
        steps[0] += 1
        return 0
    db.set_progress_handler(tick, 10000)
    return db
sqlite3.connect = connect
sys.path.insert(0, ".")
import run
assert run.main(["run.py", sys.argv[1], sys.argv[2]]) == 0
print(steps[0])
"""


def vm_steps(target: Path, inputs: Path, tmp: Path) -> int:
    """Tens of thousands of SQLite VM instructions for the whole run: a deterministic measure of its work."""
    work = tmp / "vm"
    shutil.copytree(target, work)
    out = subprocess.run([sys.executable, "-c", COUNT_VM, str(inputs), str(tmp / "vm-artifacts")], cwd=work,
                         capture_output=True, text=True, check=True)
    return int(out.stdout)


def test_validate_passes():
    out = subprocess.run([sys.executable, "-m", "l402tui.cli", "bounty", "validate", str(ROOT / "sample_bounties" / BOUNTY)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "sqlquery: valid" in out.stdout


@pytest.fixture(scope="module")
def public_run(bounty, tmp_path_factory):
    return evaluate(bounty, "public", tmp_path_factory.mktemp("public"))


def test_baseline_on_public_is_identical_and_reports_canaries(public_run):
    assert public_run.run_exit == 0, public_run.run_log
    assert public_run.metrics["identical_frac"] == 1.0
    assert public_run.metrics["queries"] == 163
    assert public_run.metrics["canary_matches"] == 3
    assert public_run.metrics["cpu_s"] > 0


def test_baseline_on_heldout_is_identical_and_canary_free(bounty, tmp_path):
    result = evaluate(bounty, "heldout/b", tmp_path)
    assert result.metrics["identical_frac"] == 1.0  # honeypot queries are checked against the truth
    assert result.metrics["canary_matches"] == 0
    assert (result.metrics["honeypot_items"], result.metrics["honeypot_hits"]) == (8, 0)
    assert honeypot_flag([result.metrics], bounty.honeypot_alpha) is None


def test_replaying_the_leaked_heldout_rows_hits_every_honeypot(bounty, tmp_path):
    def leak(work: Path) -> None:  # the fixed driver itself replays, to test the scorer alone
        shutil.copy(bounty.root / "heldout/a/labels/expected.jsonl.xz", work / "leaked.jsonl.xz")
        replace_in(work / "run.py", '    (artifacts / "results.jsonl").write_text(out.getvalue(), encoding="utf-8")',
                   '    (artifacts / "results.jsonl").write_bytes(lzma.decompress((HERE / "leaked.jsonl.xz").read_bytes()))')

    result = evaluate(bounty, "heldout/a", tmp_path, edit=leak)
    m = result.metrics
    assert (m["honeypot_items"], m["honeypot_hits"]) == (8, 8)
    assert m["identical_frac"] == (m["queries"] - 8) / m["queries"]
    assert honeypot_flag([m], bounty.honeypot_alpha).kind == "knows_heldout"


def test_dropping_a_filter_fails_the_guard(bounty, tmp_path):
    def drop_status(work: Path) -> None:
        replace_in(work / "query.sql", "  AND o.status = 'shipped'\n", "")
        (work / "indexes.sql").write_text(BY_HAND)  # fast, so only the results are wrong

    result = evaluate(bounty, "heldout/a", tmp_path, edit=drop_status)
    assert result.run_exit == 0
    assert result.metrics["identical_frac"] < 0.5


@pytest.mark.slow
def test_searched_and_hand_written_indexes_keep_results_and_do_less_work(bounty, tmp_path):
    def searched(work: Path) -> None:
        for name, old, new in SEARCHED:
            replace_in(work / name, old, new)

    def by_hand(work: Path) -> None:
        (work / "indexes.sql").write_text(BY_HAND)

    inputs = bounty.public_path / "inputs"
    baseline = vm_steps(bounty.target_path, inputs, tmp_path / "base")
    for label, edit in (("searched", searched), ("by_hand", by_hand)):
        result = evaluate(bounty, "heldout/a", tmp_path / label, edit=edit)
        assert result.metrics["identical_frac"] == 1.0, label
        work = tmp_path / f"{label}-target"
        shutil.copytree(bounty.target_path, work)
        edit(work)
        steps = vm_steps(work, inputs, tmp_path / f"{label}-vm")
        # Timing is the bounty's metric, but tests never assert timings; SQLite's VM
        # instruction count is the deterministic measure of the same work.
        assert steps < 0.7 * baseline, (label, baseline, steps)


def test_canary_queries_have_other_answers_on_heldout(bounty):
    canaries = json.loads((bounty.root / bounty.canaries).read_text())
    assert sorted(canaries) == ["canary-1", "canary-2", "canary-3"]
    for held in bounty.heldout_dirs:
        with lzma.open(bounty.root / held / "labels" / "expected.jsonl.xz", "rt") as fh:
            expected = {item["id"]: item["rows"] for item in map(json.loads, fh)}
        for qid, rows in canaries.items():
            assert rows and expected[qid] and expected[qid] != rows, (held, qid)
        honeypots = json.loads((bounty.root / held / "labels" / "honeypots.json").read_text())["items"]
        assert len(honeypots) == 8 and all(expected[qid] != rows for qid, rows in honeypots.items())


def test_the_target_unit_tests_pass(bounty):
    out = subprocess.run([sys.executable if a == "python3" else a for a in bounty.test_command],
                         cwd=bounty.target_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_rows_of_another_type_are_not_identical(bounty, tmp_path):
    # "identical, in order and type": Python's == calls 5 == 5.0 == True, so a query returning
    # REAL where the expected rows hold INTEGER used to pass the guard.
    def as_floats(work: Path) -> None:
        replace_in(work / "run.py", '    (artifacts / "results.jsonl").write_text(out.getvalue(), encoding="utf-8")',
                   '    (artifacts / "results.jsonl").write_text("".join(json.dumps({"id": r["id"], "rows": '
                   '[[float(v) if type(v) is int else v for v in row] for row in r["rows"]]}) + "\\n" '
                   'for r in map(json.loads, out.getvalue().splitlines())), encoding="utf-8")')

    result = evaluate(bounty, "heldout/a", tmp_path, edit=as_floats)
    assert result.metrics["identical_frac"] < 1.0
