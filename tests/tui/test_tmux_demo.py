"""`l402tui demo` in a real terminal (tmux, 120x40): the viewer reads the story as it
happens in the story pane, sees a payout and then a holdback release in the ledger pane,
and the summary screen when the story is complete, read back with capture-pane."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import uuid

import pytest

from tests.tui.tmux_screen import capture

pytestmark = [pytest.mark.tmux, pytest.mark.slow,
              pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")]


def test_demo_shows_a_payout_and_a_holdback_release(tmp_path):
    session = f"l402demo-{uuid.uuid4().hex[:8]}"
    env = {"XDG_CONFIG_HOME": str(tmp_path / "config"), "TERM": "xterm-256color"}
    command = (f"env -u COLUMNS -u LINES {sys.executable} -m l402tui.cli --data-dir {tmp_path / 'data'} "
               "demo --holdback 15")
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "120", "-y", "40",
                    *[f"-e{k}={v}" for k, v in env.items()], "-c", os.getcwd(), command], check=True)
    try:
        end = time.monotonic() + 60
        while time.monotonic() < end and "Ledger" not in capture(session):
            time.sleep(0.2)
        subprocess.run(["tmux", "send-keys", "-t", session, "3"], check=True)  # the ledger tab
        seen: set[str] = set()
        screen = ""
        end = time.monotonic() + 360
        while time.monotonic() < end and not {"payout", "released", "story", "summary"} <= seen:
            screen = capture(session)
            if "Story" in screen and re.search(r"^\s*\d+\.\ds (sponsor|agent-\d|L402 fee|payout|submission)",
                                               screen, re.M):
                seen.add("story")  # a narrated line, stamped, on screen while the demo runs
            if "Demo summary" in screen and re.search(r"holdback released \(stability check\)\s+\d", screen):
                seen.add("summary")
            ledger = "" if "Demo summary" in screen else screen  # the summary names milestones, not rows
            rows = [line for line in ledger.splitlines() if "payout" in line or "holdback" in line]
            if any("payout" in r and "COMPLETE" in r for r in rows):
                seen.add("payout")
            # Released (not forfeited): the ledger's "holdback released: ..." entry, or the
            # holdback payment itself once the agent has claimed it.
            if any("holdback" in r and ("released" in r or "COMPLETE" in r) for r in rows):
                seen.add("released")
            time.sleep(1.0)
            if "summary" in seen and not {"payout", "released"} <= seen:
                subprocess.run(["tmux", "send-keys", "-t", session, "Escape"], check=True)  # the ledger again
        assert {"payout", "released", "story", "summary"} <= seen, \
            f"saw only {sorted(seen)}; the screen was:\n{screen}"
        subprocess.run(["tmux", "send-keys", "-t", session, "Escape"], check=True)
        subprocess.run(["tmux", "send-keys", "-t", session, "q"], check=True)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
