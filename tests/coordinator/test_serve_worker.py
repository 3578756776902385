"""`serve`'s evaluation worker is a child process: it gets serve's settings, is started
again when it dies, stops with serve within 5 s and dies with it on `kill -9`."""

from __future__ import annotations

import signal
import time

import psutil
import requests

from l402tui.config import DEFAULTS, load_config
from l402tui.coordinator.runtime import worker_env
from tests.coordinator.serve_proc import serve_env, start_serve, stop_within


def _workers(pid: int) -> list[psutil.Process]:
    try:
        children = psutil.Process(pid).children()
    except psutil.NoSuchProcess:
        return []
    found = []
    for child in children:
        try:
            if "l402tui.coordinator.runtime" in " ".join(child.cmdline()):
                found.append(child)
        except psutil.Error:  # gone, or a zombie not reaped yet
            pass
    return found


def _until(what: str, check, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _gone(proc: psutil.Process) -> bool:
    try:
        return proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_the_worker_is_restarted_when_it_dies_and_stops_with_serve(tmp_path):
    data = tmp_path / "data"
    proc, info = start_serve(data, env=serve_env(L402TUI_EVALUATION__MAX_ATTEMPTS="5"))
    try:
        worker = _until("the evaluation worker", lambda: _workers(proc.pid))[0]
        env = worker.environ()
        assert env["L402TUI_PATHS__DATA_DIR"] == str(data)  # --data-dir reached it
        assert env["L402TUI_EVALUATION__MAX_ATTEMPTS"] == "5"
        assert requests.get(info["base"] + "/api/v1/status", timeout=10).status_code == 200
        worker.kill()
        again = _until("a new worker", lambda: [w for w in _workers(proc.pid) if w.pid != worker.pid])[0]
        assert requests.get(info["base"] + "/api/v1/status", timeout=10).status_code == 200
    finally:
        took, err = stop_within(proc, signal.SIGTERM, 5)
    assert proc.returncode == 0, err
    assert took < 5, (took, err)
    assert "Traceback" not in err, err
    assert "exited with code -9" in err, err  # the operator is told
    assert _gone(again), "the worker outlived serve"


def test_a_killed_serve_takes_its_worker_with_it(tmp_path):
    proc, info = start_serve(tmp_path / "data")
    worker = _until("the evaluation worker", lambda: _workers(proc.pid))[0]
    proc.kill()
    proc.wait(timeout=10)
    _until("the worker's death", lambda: _gone(worker), timeout=5)


def test_the_worker_environment_carries_every_setting(tmp_path):
    cfg = load_config(tmp_path / "none.toml", env={}).with_overrides({
        "paths.data_dir": str(tmp_path / "d"), "evaluation.sandbox": "bwrap", "evaluation.allow_unsandboxed": True,
        "coordinator.verdict_quantum_s": 2.5, "rate_limits.per_ip_per_minute": 7})
    seen = load_config(env=worker_env(cfg))
    for section, keys in cfg.values.items():
        for key, value in keys.items():
            if not isinstance(DEFAULTS[section][key], dict):
                assert seen.get(f"{section}.{key}") == value, (section, key)
