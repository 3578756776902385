"""`l402tui serve` as a real subprocess: binds loopback, prints where things are, stops cleanly."""

from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.coordinator.conftest import make_bounty


def _start(tmp_path: Path) -> tuple[subprocess.Popen, dict]:
    env = dict(os.environ)
    proc = subprocess.Popen(
        [sys.executable, "-m", "l402tui.cli", "--data-dir", str(tmp_path / "data"), "serve", "--port", "0",
         "--no-evaluate"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    info: dict = {}
    deadline = time.monotonic() + 30
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
    return proc, info


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_binds_loopback_prints_admin_and_stops_gracefully(tmp_path, sig):
    proc, info = _start(tmp_path)
    try:
        assert info["base"].startswith("http://127.0.0.1:")
        assert stat.S_IMODE(info["macaroon"].stat().st_mode) == 0o600
        token = info["macaroon"].read_text().strip()
        assert requests.get(info["base"] + "/api/v1/status", timeout=10).json()["ok"] is True
        r = requests.get(info["base"] + "/api/v1/admin/bounties", timeout=10)
        assert r.status_code == 401 and "admin.macaroon" in r.json()["message"]
        folder = make_bounty(tmp_path / "sponsor")
        created = requests.post(info["base"] + "/api/v1/admin/bounties", timeout=30,
                                headers={"Authorization": f"Bearer {token}"},
                                json={"path": str(folder), "self_funded": True})
        assert created.status_code == 201, created.text
        listed = requests.get(info["base"] + "/api/v1/bounties", timeout=10).json()["bounties"]
        assert [b["id"] for b in listed] == [created.json()["bounty"]["id"]]
    finally:
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert out.rstrip().endswith("stopped")
    assert re.search(r"INFO +l402tui.coordinator: bounty.status \S+ status=OPEN", err), err
