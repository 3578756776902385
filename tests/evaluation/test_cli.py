"""`l402tui sandbox status`, `bounty try` and `bounty audit` as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tinybounty import FIX_DIFF, make_sums

ROOT = Path(__file__).resolve().parents[2]


def _cli(*args: str, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    import os

    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "l402tui.cli", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)


def test_sandbox_status_reports_every_runner_and_the_choice():
    proc = _cli("sandbox", "status", "--json", env_extra={"L402TUI_EVALUATION__SANDBOX": "local"})
    data = json.loads(proc.stdout)
    assert proc.returncode == 0
    assert data["chosen"] == "local" and data["setting"] == "local"
    assert [r["kind"] for r in data["runners"]] == ["docker", "bwrap", "local"]
    local = data["runners"][2]
    assert local["detail"] == ("no isolation; runs only the sponsor's own code (untrusted submissions are refused)")


def test_sandbox_status_warns_when_untrusted_code_would_run_unisolated():
    proc = _cli("sandbox", "status", env_extra={"L402TUI_EVALUATION__SANDBOX": "local",
                                                "L402TUI_EVALUATION__ALLOW_UNSANDBOXED": "true"})
    assert "* local" in proc.stdout
    assert "WARNING: no isolating sandbox: untrusted submissions are run WITHOUT isolation" in proc.stdout


def test_bounty_try_reports_the_verdict(tmp_path):
    bounty = make_sums(tmp_path / "b")
    diff = tmp_path / "fix.diff"
    diff.write_text(FIX_DIFF)
    proc = _cli("bounty", "try", str(bounty), "--diff", str(diff), "--sandbox", "local", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert "verdict: ACCEPTED, improvement 150.00% (needs > 5.00%), payout 100% of the pool" in proc.stdout


def test_bounty_try_refuses_a_bad_diff_with_reasons(tmp_path):
    bounty = make_sums(tmp_path / "b")
    diff = tmp_path / "bad.diff"
    diff.write_text(FIX_DIFF.replace("sumlib.py", "../scorer/score.py"))
    proc = _cli("bounty", "try", str(bounty), "--diff", str(diff), "--sandbox", "local")
    assert proc.returncode == 1
    assert "refused: path escapes or is unsafe: ../scorer/score.py leaves the target tree (uses ..)" in proc.stderr


def test_bounty_audit_exits_non_zero_when_an_attack_succeeds(tmp_path):
    bounty = make_sums(tmp_path / "b")
    proc = _cli("bounty", "audit", str(bounty), "--sandbox", "local", "--only", "write_outside,edit_tests",
                "--baseline-repeats", "1")
    assert proc.returncode == 1
    assert "write_outside  VULNERABLE  wrote on the host:" in proc.stdout
    assert "1 attack(s) succeeded" in proc.stdout
    unknown = _cli("bounty", "audit", str(bounty), "--only", "teleport")
    assert unknown.returncode == 2
    assert "unknown attack(s) teleport" in unknown.stderr
