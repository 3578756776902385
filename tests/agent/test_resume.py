"""kill -9 at arbitrary moments, then resume: the work tree, branch and results.tsv stay consistent."""

import os
import random
import signal
import subprocess
import sys
import time

import git
import pytest

from l402tui.agent.results import ResultsLog

pytestmark = pytest.mark.slow


def start_agent(bounty_dir, ws_dir, *extra):
    return subprocess.Popen([sys.executable, "-m", "l402tui.cli", "agent", "--local", str(bounty_dir),
                             "--workdir", str(ws_dir), "--seed", "7", "-q", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)


def rows_in(path):
    try:
        return path.read_text().count("\n") - 1
    except FileNotFoundError:
        return -1


def test_kill_9_anywhere_then_resume(bounty_dir, tmp_path):
    ws_dir = tmp_path / "ws"
    results = ws_dir / "results.tsv"
    rng = random.Random(1)
    target_rows = 0
    for _ in range(2):
        proc = start_agent(bounty_dir, ws_dir)
        target_rows = rows_in(results) + 2
        deadline = time.monotonic() + 60
        while rows_in(results) < target_rows and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
        assert proc.poll() is None, proc.stdout.read().decode()
        time.sleep(rng.uniform(0.0, 0.3))  # somewhere in the next experiment
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    before = rows_in(results)
    done = start_agent(bounty_dir, ws_dir, "--max-experiments", "3")
    out, _ = done.communicate(timeout=120)
    assert done.returncode == 0, out.decode()
    assert "resumed guess" in out.decode()

    rows = ResultsLog(results).read()
    assert results.read_text().endswith("\n") and len(rows) >= before + 3
    assert rows[0].description == "baseline" and rows[0].status == "keep"
    repo = git.Repo(ws_dir)
    branch = [c for c in repo.iter_commits("HEAD")][::-1]  # oldest first
    kept = [r for r in rows if r.status == "keep"]
    # Exactly the kept experiments are on the branch, in order, and nothing else.
    assert [c.hexsha[:7] for c in branch] == [r.commit for r in kept]
    assert not any(c.message.startswith("candidate:") for c in branch)
    metrics = [r.metric for r in kept]
    assert metrics == sorted(metrics, reverse=True) and len(set(metrics)) == len(metrics)
    for row in rows:  # every experiment can be looked at by its hash
        assert repo.commit(row.commit)
    assert repo.git.status("--porcelain") == ""
