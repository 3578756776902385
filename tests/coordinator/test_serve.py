"""`l402tui serve` as a real subprocess: binds loopback, prints where things are, stops cleanly."""

from __future__ import annotations

import socket
import re
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.coordinator.conftest import make_bounty
from tests.coordinator.serve_proc import serve_env, start_serve, stop_within


def _start(tmp_path: Path, **kw) -> tuple[subprocess.Popen, dict]:
    return start_serve(tmp_path / "data", "--no-evaluate", **kw)


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


def test_closed_stdout_does_not_stop_the_stop(tmp_path):
    """The reader of stdout is gone (a pager quit, a broken pipe): SIGTERM still ends it."""
    proc, info = _start(tmp_path)
    proc.stdout.close()
    took, err = stop_within(proc, signal.SIGTERM, 5)
    assert proc.returncode == 0, err
    assert took < 5, (took, err)
    assert "Traceback" not in err and "BrokenPipe" not in err, err


@pytest.mark.parametrize("args, word", [(["--port", "99999"], "99999"), (["--port", "-1"], "-1"),
                                        (["--host", "no-such-host.invalid", "--port", "1"], "no-such-host")])
def test_bad_address_is_one_line_exit_2_before_the_database_opens(tmp_path, args, word):
    data = tmp_path / "data"
    done = subprocess.run([sys.executable, "-m", "l402tui.cli", "--data-dir", str(data), "serve", *args],
                          capture_output=True, text=True, timeout=30, env=serve_env())
    assert done.returncode == 2, done
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and word in lines[0], done.stderr
    assert done.stdout == ""
    assert not data.exists(), "the data dir (and database) were touched before the options were checked"


def test_a_taken_port_is_refused_and_releases_the_database(tmp_path):
    proc, info = _start(tmp_path)
    try:
        port = info["base"].rsplit(":", 1)[1]
        done = subprocess.run([sys.executable, "-m", "l402tui.cli", "--data-dir", str(tmp_path / "data2"), "serve",
                               "--port", port, "--no-evaluate"], capture_output=True, text=True, timeout=30,
                              env=serve_env())
        assert done.returncode == 1 and "cannot listen" in done.stderr and "Traceback" not in done.stderr, done
    finally:
        stop_within(proc, signal.SIGTERM, 5)


def test_sd_notify_ready_then_stopping(tmp_path):
    notify = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(notify))
        sock.settimeout(30)
        proc, info = _start(tmp_path, env=serve_env(NOTIFY_SOCKET=str(notify)))
        try:
            ready = sock.recv(4096).decode()
            assert ready.splitlines()[0] == "READY=1" and info["base"] in ready
            assert requests.get(info["base"] + "/api/v1/status", timeout=10).status_code == 200
        finally:
            took, err = stop_within(proc, signal.SIGTERM, 5)
        assert sock.recv(4096).decode() == "STOPPING=1"
    assert proc.returncode == 0, err


def test_a_second_signal_exits_at_once(tmp_path):
    """First SIGINT starts the stop; a second while it runs ends the process quietly."""
    proc, info = _start(tmp_path)
    with socket.create_connection(("127.0.0.1", int(info["base"].rsplit(":", 1)[1]))) as held:
        # An open request keeps the graceful stop waiting for it.
        held.sendall(b"GET /api/v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
                     info["token"].encode() + b"\r\n\r\n")
        held.recv(100)
        proc.send_signal(signal.SIGINT)
        took, err = stop_within(proc, signal.SIGINT, 5)
    assert proc.returncode in (0, 128 + signal.SIGINT), err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err


def test_a_damaged_token_master_key_is_refused_in_one_message(tmp_path):
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    (data / "l402_master.key").write_bytes(b"short")
    (data / "l402_master.key").chmod(0o600)
    done = subprocess.run([sys.executable, "-m", "l402tui.cli", "--data-dir", str(data), "serve", "--port", "0"],
                          capture_output=True, text=True, timeout=60, env=serve_env())
    assert done.returncode == 1, done
    assert "Traceback" not in done.stderr and "l402_master.key" in done.stderr, done.stderr
