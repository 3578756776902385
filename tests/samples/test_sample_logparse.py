"""sample_bounties/logparse: validates, runs by the contract, guard and canary behave."""

from __future__ import annotations

import json
import lzma
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from l402tui.evaluation.antigaming import binomial_tail, honeypot_flag
from tests.samples.contract import ROOT, evaluate, replace_in

BOUNTY = "logparse"
FAST = [("TIMESTAMP_PARSER = \"strptime\"", "TIMESTAMP_PARSER = \"slicing\""),
        ("DISTINCT_WITH = \"list\"", "DISTINCT_WITH = \"set\""),
        ("LINE_REGEX = \"per_line\"", "LINE_REGEX = \"once\""),
        ("UNESCAPE = \"loop\"", "UNESCAPE = \"replace\""),
        ("SESSIONS_BY = \"scan\"", "SESSIONS_BY = \"group\"")]


def faster(work: Path) -> None:
    for old, new in FAST:
        replace_in(work / "logparse.py", old, new)


def count_calls(target: Path, lines: list[str], edit=None) -> int:
    """Python + C function calls made by analyze(): a deterministic measure of its work."""
    code = (
        "import sys, json\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "import logparse\n"
        "lines = json.load(sys.stdin)\n"
        "calls = 0\n"
        "def prof(frame, event, arg):\n"
        "    global calls\n"
        "    if event in ('call', 'c_call'):\n"
        "        calls += 1\n"
        "sys.setprofile(prof)\n"
        "logparse.analyze(lines)\n"
        "sys.setprofile(None)\n"
        "print(calls)\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(target)], input=json.dumps(lines), text=True,
                         capture_output=True, check=True)
    return int(out.stdout)


def test_validate_passes():
    out = subprocess.run([sys.executable, "-m", "l402tui.cli", "bounty", "validate", str(ROOT / "sample_bounties" / BOUNTY)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "logparse: valid" in out.stdout


@pytest.fixture(scope="module")
def public_run(bounty, tmp_path_factory):
    return evaluate(bounty, "public", tmp_path_factory.mktemp("public"))


def test_baseline_on_public_is_correct_and_reports_the_canary(public_run):
    assert public_run.run_exit == 0, public_run.run_log
    assert public_run.metrics["correct_frac"] == 1.0
    assert public_run.metrics["files_scored"] == 5
    assert public_run.metrics["canary_matches"] == 1  # honest code reproduces the public canary answer
    assert public_run.metrics["cpu_s"] > 0


def test_baseline_on_heldout_is_correct_and_canary_free(bounty, tmp_path):
    result = evaluate(bounty, "heldout/a", tmp_path)
    assert result.metrics["correct_frac"] == 1.0  # honeypot fields are checked against the truth
    assert result.metrics["canary_matches"] == 0
    m = result.metrics
    assert (m["honeypot_items"], m["honeypot_hits"]) == (8, 0)
    assert honeypot_flag([m], bounty.honeypot_alpha) is None
    print(f"logparse honest heldout/a: honeypot k=0 of 8, p={binomial_tail(8, 0, m['honeypot_chance']):.3g}")


REPLAY = """
import atexit as _atexit, json as _json, sys as _sys
_leaked = _json.load(open("leaked.json"))
def _replay():
    with open(_sys.argv[2] + "/reports.json", "w") as fh:
        _json.dump(_leaked, fh)
_atexit.register(_replay)
"""


def test_replaying_the_leaked_heldout_reports_hits_every_honeypot(bounty, tmp_path):
    def leak(work: Path) -> None:
        shutil.copy(bounty.root / "heldout/a/labels/expected.json", work / "leaked.json")
        (work / "logparse.py").write_text((work / "logparse.py").read_text() + REPLAY)

    result = evaluate(bounty, "heldout/a", tmp_path, edit=leak)
    m = result.metrics
    assert (m["honeypot_items"], m["honeypot_hits"]) == (8, 8)
    assert m["correct_frac"] < 1.0  # the decoys are wrong answers too
    flag = honeypot_flag([m], bounty.honeypot_alpha)
    assert flag.kind == "knows_heldout" and flag.evidence["p_value"] < 1e-15


def test_heldout_data_differs_from_public(bounty):
    public = json.loads((bounty.public_path / "labels" / "expected.json").read_text())
    canaries = json.loads((bounty.root / bounty.canaries).read_text())
    for held in bounty.heldout_dirs:
        expected = json.loads((bounty.root / held / "labels" / "expected.json").read_text())
        assert set(canaries) <= set(expected)
        honeypots = json.loads((bounty.root / held / "labels" / "honeypots.json").read_text())["items"]
        assert len(honeypots) == 8 and all(expected[h["file"]][h["key"]] != h["value"] for h in honeypots)
        for name, answer in canaries.items():
            assert expected[name] != answer, f"{held}: canary {name} has the public answer"
        assert all(expected[f] != public[f] for f in public), held
        hosts = {h for report in expected.values() for h in report["hosts"]}
        assert not hosts & {h for report in public.values() for h in report["hosts"]}, "held-out hosts overlap"
        raw = lzma.decompress((bounty.root / held / "inputs" / "access-01.log.xz").read_bytes())
        assert raw != lzma.decompress((bounty.public_path / "inputs" / "access-01.log.xz").read_bytes())


def test_a_broken_parser_fails_the_guard(bounty, tmp_path):
    def break_hex(work: Path) -> None:  # forgets hex object ids: looks harmless, changes top_paths
        replace_in(work / "logparse.py", 'result = result + ":hex"', "result = result + seg")

    result = evaluate(bounty, "heldout/a", tmp_path, edit=break_hex)
    assert result.run_exit == 0
    assert result.metrics["correct_frac"] < 1.0


@pytest.mark.slow
def test_a_faster_parser_keeps_the_guard_and_does_less_work(bounty, tmp_path):
    result = evaluate(bounty, "heldout/a", tmp_path / "eval", edit=faster)
    assert result.metrics["correct_frac"] == 1.0
    assert result.metrics["canary_matches"] == 0
    # Timing is the bounty's metric but tests never assert timings (figures: the final report);
    # the call count is the deterministic measure of the same work.
    with lzma.open(bounty.public_path / "inputs" / "access-01.log.xz", "rt") as fh:
        lines = fh.read().splitlines()[:1500]
    work = tmp_path / "fast"
    shutil.copytree(bounty.target_path, work)
    faster(work)
    baseline_calls = count_calls(bounty.target_path, lines)
    fast_calls = count_calls(work, lines)
    assert fast_calls < 0.8 * baseline_calls, (baseline_calls, fast_calls)


def test_the_target_unit_tests_pass(bounty):
    out = subprocess.run([sys.executable if a == "python3" else a for a in bounty.test_command],
                         cwd=bounty.target_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "OK" in out.stderr
