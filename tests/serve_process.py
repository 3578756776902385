"""`l402tui serve` started as a real subprocess for a test, read until it says where it
listens and where its admin macaroon is."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest


def start_serve(data: Path, port: int = 0, env: dict[str, str] | None = None,
                timeout_s: float = 60) -> tuple[subprocess.Popen, str, str]:
    """Start it (without the evaluation worker) on ``data``; returns (process, URL,
    admin macaroon path).  Fails the test with what it printed if it does not start."""
    proc = subprocess.Popen([sys.executable, "-m", "l402tui.cli", "--data-dir", str(data), "serve", "--port",
                             str(port), "--no-evaluate"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env={**os.environ, **(env or {})})
    url = macaroon = None
    lines: list[str] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and (url is None or macaroon is None):
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if m := re.search(r"listening on (http://\S+)", line):
            url = m.group(1)
        if m := re.search(r"admin macaroon:\s+(\S+)", line):
            macaroon = m.group(1)
    if url is None or macaroon is None:
        proc.kill()
        pytest.fail("l402tui serve did not start:\n" + "".join(lines))
    return proc, url, macaroon
