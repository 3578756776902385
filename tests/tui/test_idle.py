"""What keeps an idle TUI cheap: the coordinator's tick does full passes only when there is
work, and start-up imports nothing heavy that it does not use (numpy through sqlite-utils,
the docker SDK, test-only libraries).  The figures themselves are in bench/tui.py."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from l402tui.config import load_config

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def cfg(tmp_path):
    return load_config(tmp_path / "no-config.toml", env={}).with_overrides(
        {"paths.data_dir": str(tmp_path / "data"), "coordinator.port": 0})


@pytest.fixture
async def ticking(cfg):
    """A started coordinator over an empty database whose full tick passes are timed."""
    from l402tui.coordinator.service import Coordinator
    from l402tui.lightning.sim import SimNetwork
    from l402tui.store import Store

    net = SimNetwork.from_config(cfg)
    await net.create_node("coordinator", 0, exist_ok=True)
    store = await Store.open(cfg.db_path)
    coordinator = Coordinator(cfg, store, net.node("coordinator"))
    coordinator.tick_s = 0.05
    coordinator.idle_ticks = 200  # the idle backstop: a full pass every 10 s at the latest
    passes: list[float] = []
    run_due_timers = coordinator.run_due_timers

    async def counted(now=None):
        passes.append(time.monotonic())
        return await run_due_timers(now)

    coordinator.run_due_timers = counted
    await coordinator.start()
    passes.clear()  # start() catches up once on its own; count the tick's passes only
    yield coordinator, passes
    await coordinator.stop()
    await store.close()
    await net.close()


async def wait_for_pass(passes: list[float], after: float, limit_s: float = 5.0) -> float:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        later = [t for t in passes if t >= after]
        if later:
            return later[0]
        await asyncio.sleep(0.02)
    raise AssertionError(f"no full tick pass within {limit_s} s")


async def test_idle_tick_does_not_repeat_full_passes(ticking):
    coordinator, passes = ticking
    await asyncio.sleep(1.5)  # 30 ticks of 50 ms
    # Once at start, then nothing changed and nothing is due: no pass until the backstop.
    assert 1 <= len(passes) <= 2, passes


async def test_tick_runs_a_pass_when_another_connection_commits(ticking, cfg):
    coordinator, passes = ticking
    await asyncio.sleep(0.3)
    before = time.monotonic()
    with sqlite3.connect(cfg.db_path) as other:  # another process's write, as `serve`'s worker makes
        other.execute("INSERT INTO timers (kind, subject_id, due_at, created_at) VALUES (?, ?, ?, ?)",
                      ("funding_expiry", "b_elsewhere", time.time() + 3600, time.time()))
    seen = await wait_for_pass(passes, before)
    assert seen - before < 3.0  # the backstop alone would take 10 s


async def test_tick_runs_a_pass_when_a_timer_falls_due(ticking):
    coordinator, passes = ticking
    due_in = 1.0
    async with coordinator.transaction() as txn:  # this connection's own commit: a pass at once
        await coordinator._timer(txn, "funding_expiry", "b_nobody", time.time() + due_in)
    start = time.monotonic()
    await asyncio.sleep(0.4)
    quiet = len(passes)
    seen = await wait_for_pass(passes, start + due_in - 0.05)
    assert seen - start < due_in + 2.5  # woken by the due time, not the 10 s backstop
    assert quiet <= 2  # before it fell due: the pass for the commit, nothing every tick


def run_python(code: str, timeout: float = 120) -> dict:
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(importlib.util.find_spec("numpy") is None, reason="numpy is not installed here")
def test_sqlite_utils_is_imported_without_numpy_which_stays_importable():
    out = run_python("""
        import json, sys
        from l402tui.store.lean_imports import import_sqlite_utils
        sqlite_utils = import_sqlite_utils()
        db = sqlite_utils.Database(memory=True)
        db["t"].insert({"a": 1})
        loaded = "numpy" in sys.modules
        import numpy
        print(json.dumps({"rows": db.execute("SELECT a FROM t").fetchall(), "numpy_loaded": loaded,
                          "np_seen_by_sqlite_utils": sqlite_utils.db.np is not None,
                          "numpy_later": numpy.__name__}))
    """)
    assert out == {"rows": [[1]], "numpy_loaded": False, "np_seen_by_sqlite_utils": False,
                   "numpy_later": "numpy"}


HEAVY = ("numpy", "pandas", "docker", "requests", "hypothesis", "pyln", "git")


def test_start_up_imports_only_what_the_screens_use(tmp_path):
    """Before the first frame nothing of the data layer; with the coordinator up, still no
    numpy, docker SDK, gitpython or test libraries."""
    out = run_python(f"""
        import asyncio, json, sys
        from pathlib import Path
        from l402tui.config import load_config
        from l402tui.tui.launch import build_app

        cfg = load_config(Path({str(tmp_path / 'none.toml')!r}), env={{}}).with_overrides(
            {{"paths.data_dir": {str(tmp_path / 'data')!r}, "coordinator.port": 0}})
        app = build_app(cfg)
        before_paint = sorted(m for m in ("sqlite_utils", "aiosqlite", "aiohttp", "l402tui.store",
                                          "l402tui.coordinator.service") if m in sys.modules)

        async def main():
            async with app.run_test(size=(120, 40)) as pilot:
                for _ in range(600):
                    await pilot.pause(0.05)
                    if app.source is not None:
                        break
                return app.source.description

        description = asyncio.run(main())
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in {HEAVY!r})
        print(json.dumps({{"before_paint": before_paint, "source": description,
                          "heavy": sorted({{m.split(".")[0] for m in heavy}})}}))
    """)
    assert out["before_paint"] == []
    assert out["source"].startswith("in-process")
    assert out["heavy"] == []


async def test_event_followers_wake_for_commits_that_bypass_the_service(ticking):
    """The evaluation worker writes through the store, not the service: the tick notices
    its commit and wakes followers, which otherwise would wait out their poll."""
    coordinator, passes = ticking
    after = await coordinator.last_event_id()
    stream = coordinator.follow_events(after, poll_s=60.0)
    first = asyncio.ensure_future(stream.__anext__())
    await asyncio.sleep(0.3)  # the follower is parked on its 60 s wait
    async with coordinator.store.transaction() as txn:
        await txn.event("evaluation.done", "42", status="DONE")
    event = await asyncio.wait_for(first, timeout=10)
    assert event["kind"] == "evaluation.done"
    await stream.aclose()
