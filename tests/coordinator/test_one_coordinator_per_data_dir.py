"""One coordinator per data dir: a second `serve` (on another port), a TUI's in-process
coordinator or a demo on a folder a coordinator holds is refused in one line, and the lock
goes with the process (kill -9 included)."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from l402tui.coordinator.runtime import CoordinatorBusy, data_dir_busy, start_coordinator
from tests.coordinator.serve_proc import serve_env, start_serve, stop_within


async def test_a_second_coordinator_on_the_same_data_dir_is_refused_until_the_first_stops(cfg):
    cfg = cfg.with_overrides({"coordinator.port": 0})
    first = await start_coordinator(cfg, evaluate=False)
    try:
        with pytest.raises(CoordinatorBusy, match="already runs on"):
            await start_coordinator(cfg, evaluate=False)
        assert "already runs" in (data_dir_busy(cfg.data_dir) or "")
    finally:
        await first.close()
    assert data_dir_busy(cfg.data_dir) is None
    again = await start_coordinator(cfg, evaluate=False)
    await again.close()


def test_a_second_serve_exits_with_one_line_and_a_killed_one_frees_the_folder(tmp_path):
    data = tmp_path / "data"
    proc, _ = start_serve(data, "--no-evaluate")
    try:
        second = subprocess.run([sys.executable, "-m", "l402tui.cli", "--data-dir", str(data), "serve", "--port", "0",
                                 "--no-evaluate"], capture_output=True, text=True, env=serve_env(), timeout=60)
        assert second.returncode != 0
        lines = [line for line in second.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and "already runs on" in lines[0] and f"pid {proc.pid}" in lines[0], second.stderr
        assert "Traceback" not in second.stderr
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    proc, _ = start_serve(data, "--no-evaluate")  # kill -9 left no stale lock behind
    stop_within(proc, signal.SIGTERM, 5)
