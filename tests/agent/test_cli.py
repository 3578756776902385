"""`l402tui agent` as a user runs it: usage errors, and Ctrl-C in the middle of an evaluation."""

import hashlib
import os
import signal
import subprocess
import sys
import time

import git
import psutil
import pytest

from agent_fixtures import MODEL


def cmdline(process):
    try:
        return " ".join(process.cmdline())
    except psutil.Error:  # gone, or a zombie
        return ""

CLI = [sys.executable, "-m", "l402tui.cli"]


def test_needs_exactly_one_of_local_or_coordinator(tmp_path):
    out = subprocess.run([*CLI, "agent"], capture_output=True, text=True)
    assert out.returncode == 2 and "give either --coordinator URL or --local BOUNTY_DIR" in out.stderr
    out = subprocess.run([*CLI, "agent", "--local", str(tmp_path), "--proposer", "command"],
                         capture_output=True, text=True)
    assert out.returncode == 2 and "--proposer command needs --command" in out.stderr


def test_an_invalid_bounty_folder_is_reported(tmp_path):
    (tmp_path / "bounty.toml").write_text('name = "x"\n')
    out = subprocess.run([*CLI, "agent", "--local", str(tmp_path), "--workdir", str(tmp_path / "ws")],
                         capture_output=True, text=True)
    assert out.returncode == 1 and "is not a valid bounty" in out.stderr and "files.mutable is required" in out.stderr


@pytest.mark.slow
def test_ctrl_c_during_an_evaluation_stops_at_once_and_cleanly(bounty_dir, tmp_path):
    # Any changed model.py makes the run phase sleep, so the first experiment hangs in its evaluation.
    digest = hashlib.sha256(MODEL.encode()).hexdigest()
    predict = bounty_dir / "target" / "predict.py"
    predict.write_text(f"import hashlib, pathlib, time\nif hashlib.sha256(pathlib.Path('model.py').read_bytes())"
                       f".hexdigest() != {digest!r}:\n    time.sleep(120)\n" + predict.read_text())
    ws = tmp_path / "ws"
    proc = subprocess.Popen([*CLI, "agent", "--local", str(bounty_dir), "--workdir", str(ws), "-q"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    me = psutil.Process(proc.pid)
    deadline = time.monotonic() + 60
    results = ws / "results.tsv"
    while not (results.exists() and "baseline" in results.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)  # the baseline row is written: the first experiment comes next
    while time.monotonic() < deadline:
        sleeping = [p for p in me.children(recursive=True) if "predict.py" in cmdline(p)]
        if sleeping:
            break
        time.sleep(0.05)
    assert sleeping, "the evaluation never started"
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
    out, _ = proc.communicate(timeout=15)
    assert proc.returncode == 130, out.decode()
    assert "interrupted: the work tree is back on its last kept commit" in out.decode()
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in sleeping)
    repo = git.Repo(ws)
    assert repo.git.status("--porcelain") == ""
    assert repo.head.commit.message.startswith("baseline")
