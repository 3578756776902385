"""`l402tui serve` as a real subprocess for tests: start it, read its banner, stop it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest


def serve_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    # Trusted scorers run with our PATH; pyenv shims cost ~0.3 s per python3 start.
    if Path("/usr/bin/python3").exists():
        env["PATH"] = "/usr/bin:" + env.get("PATH", "")
    env.update(extra)
    return env


def start_serve(data_dir: Path, *args: str, env: dict[str, str] | None = None,
                stdout=subprocess.PIPE) -> tuple[subprocess.Popen, dict]:
    """Start serve on a free loopback port; returns (process, {"base", "macaroon", "token"})."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "l402tui.cli", "--data-dir", str(data_dir), "serve", "--port", "0", *args],
        stdout=stdout, stderr=subprocess.PIPE, text=True, env=env or serve_env())
    info: dict = {}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and "macaroon" not in info:
        line = proc.stdout.readline()
        if not line:
            break
        if m := re.search(r"listening on (http://\S+)", line):
            info["base"] = m.group(1)
        if m := re.search(r"admin macaroon:\s+(\S+)", line):
            info["macaroon"] = Path(m.group(1))
    if "macaroon" not in info:
        proc.kill()
        pytest.fail(f"serve did not start: {proc.stderr.read()}")
    info["token"] = info["macaroon"].read_text().strip()
    return proc, info


def stop_within(proc: subprocess.Popen, sig: int, seconds: float) -> tuple[float, str]:
    """Send ``sig`` and wait for the exit; returns (seconds it took, stderr)."""
    t0 = time.monotonic()
    proc.send_signal(sig)
    try:
        proc.wait(timeout=seconds + 10)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"serve did not exit within {seconds + 10} s of signal {sig}")
    took = time.monotonic() - t0
    err = proc.stderr.read() if proc.stderr else ""
    return took, err
