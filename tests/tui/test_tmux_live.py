"""The real `l402tui` under tmux: an evaluation's log lines on screen while it is still
RUNNING, and quitting while the agent loop runs leaves no traceback in the terminal."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from l402tui.store import open_sync
from tests.tui import tmux_screen
from tests.tui.seed import seed, seed_running_evaluation

pytestmark = [pytest.mark.tmux, pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")]
ROOT = Path(__file__).resolve().parents[2]


def wait_screen(session: str, *needles: str, timeout: float = 60.0) -> str:
    return tmux_screen.wait_screen(session, *needles, timeout=timeout, history=100)


def start(tmp_path: Path, args: str, env: dict[str, str], size=(120, 40)) -> str:
    session = f"l402live-{uuid.uuid4().hex[:8]}"
    env = {"XDG_CONFIG_HOME": str(tmp_path / "config"), "TERM": "xterm-256color", **env}
    # The shell stays after the app exits, so what it printed on the way out can be read.
    command = (f"env -u COLUMNS -u LINES {sys.executable} -m l402tui.cli --data-dir {tmp_path / 'data'} {args}; "
               "echo l402tui-exited-$?; sleep 120")
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", str(size[0]), "-y", str(size[1]),
                    *[f"-e{k}={v}" for k, v in env.items()], "-c", str(ROOT), "sh", "-c", command], check=True)
    return session


@pytest.fixture
def sessions():
    started: list[str] = []
    yield started
    for s in started:
        subprocess.run(["tmux", "kill-session", "-t", s], capture_output=True)


def test_log_lines_show_while_the_evaluation_runs(tmp_path, sessions):
    """A process appends to the attempt's log the way the evaluation worker does (line by line,
    flushed); each line must be on screen while the row still says RUNNING."""
    data = tmp_path / "data"
    seed(data / "l402tui.sqlite", data / "logs")
    folder = seed_running_evaluation(data / "l402tui.sqlite", started_at=time.time())
    s = start(tmp_path, "tui --read-only", {})
    sessions.append(s)
    wait_screen(s, "RUNNING", "repeat 2/3", "[run] batch 01 f1=0.81")
    for i in range(3):
        with (folder / "repeat-1.log").open("a") as fh:
            fh.write(f"[run] live line {i}\n")
        screen = wait_screen(s, f"[run] live line {i}", timeout=10)
        assert "DONE" not in screen.split("Eval log", 1)[1].splitlines()[0]  # the title still says RUNNING
    db = open_sync(data / "l402tui.sqlite")
    with db.conn:
        db["evaluations"].update(2, {"status": "DONE", "finished_at": time.time()})
        db["events"].insert({"kind": "evaluation.done", "subject_id": "2", "payload_json": json.dumps({}),
                             "created_at": time.time()})
    db.close()
    wait_screen(s, "DONE · repeat 2/3")
    subprocess.run(["tmux", "send-keys", "-t", s, "q"], check=True)
    wait_screen(s, "l402tui-exited-0")


@pytest.mark.slow
def test_quitting_while_the_agent_runs_prints_no_traceback(tmp_path, sessions):
    from tests.agent.agent_fixtures import make_bounty

    folder = make_bounty(tmp_path / "guess")  # a small bounty the offline loop runs in seconds
    s = start(tmp_path, "tui --read-only", {"L402TUI_TUI__AGENT_LOCAL_DIR": str(folder)})
    sessions.append(s)
    wait_screen(s, "Bounties")
    subprocess.run(["tmux", "send-keys", "-t", s, "a"], check=True)
    wait_screen(s, "Start", "offline on")  # the loop is attached (after the source opens): `s` reaches it
    subprocess.run(["tmux", "send-keys", "-t", s, "s"], check=True)
    wait_screen(s, "RUNNING", "experiment", timeout=60)
    time.sleep(3)  # inside an experiment: git work and a public evaluation under way
    subprocess.run(["tmux", "send-keys", "-t", s, "q"], check=True)
    screen = wait_screen(s, "l402tui-exited-", timeout=60)
    assert "l402tui-exited-0" in screen
    assert "Traceback" not in screen and "Exception ignored" not in screen, screen


SLOW_SOLVE = '''\
import json, pathlib, sys, time
inputs, artifacts = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
nums = json.loads((inputs / "nums.json").read_text())
for tick in range(12):
    print(f"working, tick {tick}", flush=True)
    time.sleep(0.5)
(artifacts / "answer.json").write_text(json.dumps(sum(nums) + 3))
'''


@pytest.mark.slow
def test_a_real_evaluations_log_shows_before_it_is_done(tmp_path, sessions):
    """The in-process coordinator measures a real bounty's baseline (its worker, its sandbox);
    the run's own lines appear on screen while the evaluation still RUNS."""
    from tests.coordinator.conftest import make_bounty

    folder = make_bounty(tmp_path / "sponsor", hours=1)
    (folder / "target" / "solve.py").write_text(SLOW_SOLVE)
    data = tmp_path / "data"
    created = subprocess.run([sys.executable, "-m", "l402tui.cli", "--data-dir", str(data), "bounty", "create",
                              str(folder), "--self-funded"], capture_output=True, text=True, timeout=120,
                             env={**__import__("os").environ, "XDG_CONFIG_HOME": str(tmp_path / "config")})
    assert created.returncode == 0, created.stderr
    s = start(tmp_path, "tui", {})
    sessions.append(s)
    screen = wait_screen(s, "working, tick 3", timeout=90)
    log_title = screen.split("Eval log", 1)[1].splitlines()[0]
    assert "RUNNING" in log_title and "DONE" not in log_title, screen
    assert "tick 11" not in screen  # the run has not finished printing: this is live
    wait_screen(s, "working, tick 11", timeout=60)
    subprocess.run(["tmux", "send-keys", "-t", s, "q"], check=True)
    wait_screen(s, "l402tui-exited-0", timeout=60)
