"""Reading a tmux pane for the tests that run the real `l402tui` under tmux."""

from __future__ import annotations

import subprocess
import time


def capture(session: str, *, history: int = 0) -> str:
    """The pane's text (``history`` lines of scrollback above it too)."""
    args = ["tmux", "capture-pane", "-p", "-t", session] + (["-S", f"-{history}"] if history else [])
    return subprocess.run(args, capture_output=True, text=True).stdout


def wait_screen(session: str, *needles: str, timeout: float = 60.0, history: int = 0) -> str:
    """The pane once every needle is on it; fails with the last screen after ``timeout``."""
    end = time.monotonic() + timeout
    screen = ""
    while time.monotonic() < end:
        screen = capture(session, history=history)
        if all(n in screen for n in needles):
            return screen
        time.sleep(0.1)
    raise AssertionError(f"{needles} never appeared; the screen was:\n{screen}")
