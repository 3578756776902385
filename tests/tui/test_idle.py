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


class TickMarks:
    """Markers the tests wait on instead of sleeping: each look of the tick (one per
    ``tick_s``, counted at its read of ``PRAGMA data_version``) and each full pass, with
    the number of looks so far, so "within n ticks" is asserted, not seconds of a busy box."""

    def __init__(self):
        self.look_times: list[float] = []  # wall time of each look (the tick compares due times with it)
        self.passes: list[int] = []  # the look count at each full pass
        self._changed = asyncio.Event()

    @property
    def looks(self) -> int:
        return len(self.look_times)

    def looked(self) -> None:
        self.look_times.append(time.time())
        self._changed.set()

    def passed(self) -> None:
        self.passes.append(self.looks)
        self._changed.set()

    async def until(self, condition, what: str, limit_s: float = 20.0) -> None:
        async def wait() -> None:
            while not condition():
                self._changed.clear()
                await self._changed.wait()

        try:
            await asyncio.wait_for(wait(), limit_s)  # only a guard against hanging: never reached when it works
        except asyncio.TimeoutError:
            raise AssertionError(f"no {what} (looks {self.looks}, passes at {self.passes})") from None

    async def ticks(self, n: int) -> None:
        target = self.looks + n
        await self.until(lambda: self.looks >= target, f"{n} more ticks")


@pytest.fixture
async def ticking(cfg):
    """A started coordinator over an empty database whose looks and full passes are marked."""
    from l402tui.coordinator.service import Coordinator
    from l402tui.lightning.sim import SimNetwork
    from l402tui.store import Store

    net = SimNetwork.from_config(cfg)
    await net.create_node("coordinator", 0, exist_ok=True)
    store = await Store.open(cfg.db_path)
    coordinator = Coordinator(cfg, store, net.node("coordinator"))
    coordinator.tick_s = 0.05
    coordinator.idle_ticks = 200  # the idle backstop: a full pass every 200 ticks at the latest
    marks = TickMarks()
    run_due_timers, data_version = coordinator.run_due_timers, coordinator._data_version
    async def counted_pass(now=None):
        marks.passed()
        return await run_due_timers(now)

    async def counted_look():
        marks.looked()
        return await data_version()

    coordinator.run_due_timers = counted_pass
    coordinator._data_version = counted_look
    await coordinator.start()
    marks.passes.clear()  # start() catches up once on its own; count the tick's passes only
    yield coordinator, marks
    await coordinator.stop()
    await store.close()
    await net.close()


async def test_idle_tick_does_not_repeat_full_passes(ticking):
    coordinator, marks = ticking
    await marks.ticks(30)
    # Once at start, then nothing changed and nothing is due: no pass until the backstop.
    assert 1 <= len(marks.passes) <= 2, marks.passes


async def test_tick_runs_a_pass_when_another_connection_commits(ticking, cfg):
    coordinator, marks = ticking
    await marks.until(lambda: marks.passes, "first pass")
    await marks.ticks(3)  # past the first pass and its re-read of data_version: the tick is idle
    before = len(marks.passes)
    look = marks.looks
    with sqlite3.connect(cfg.db_path) as other:  # another process's write, as `serve`'s worker makes
        other.execute("INSERT INTO timers (kind, subject_id, due_at, created_at) VALUES (?, ?, ?, ?)",
                      ("funding_expiry", "b_elsewhere", time.time() + 3600, time.time()))
    await marks.until(lambda: len(marks.passes) > before, "pass after the other connection's commit")
    assert marks.passes[before] - look <= 3  # the next look or two, not the backstop's 200


async def test_tick_runs_a_pass_when_a_timer_falls_due(ticking):
    coordinator, marks = ticking
    due_in = 1.0  # 20 ticks of 50 ms
    async with coordinator.transaction() as txn:  # this connection's own commit: a pass at once
        await coordinator._timer(txn, "funding_expiry", "b_nobody", time.time() + due_in)
    due_at = time.time() + due_in
    await marks.until(lambda: marks.passes, "the pass for the commit")
    committed = len(marks.passes)

    def due_look() -> int | None:  # the first look (1-based) at or after the due time
        return next((i + 1 for i, t in enumerate(marks.look_times) if t >= due_at), None)

    def fired() -> list[int]:
        due = due_look()
        return [] if due is None else [p for p in marks.passes[committed:] if p >= due]

    await marks.until(fired, "a pass once the timer fell due")
    quiet = [p for p in marks.passes[committed:] if p < due_look()]
    assert len(quiet) <= 1, marks.passes  # before it fell due: at most the commit's follow-up, not every tick
    assert fired()[0] - due_look() <= 3  # woken by the due time, not the backstop's 200 ticks


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
    coordinator, _ = ticking
    after = await coordinator.last_event_id()
    stream = coordinator.follow_events(after, poll_s=60.0)
    tail = coordinator._event_tail()  # the one the follower reads
    read, parked = tail.after, asyncio.Event()

    async def marked_read(*args, **kwargs):
        batch = await read(*args, **kwargs)
        if not batch:
            parked.set()  # nothing new: the follower goes on to its 60 s wait
        return batch

    tail.after = marked_read
    first = asyncio.ensure_future(stream.__anext__())
    await asyncio.wait_for(parked.wait(), 10)
    async with coordinator.store.transaction() as txn:
        await txn.event("evaluation.done", "42", status="DONE")
    event = await asyncio.wait_for(first, timeout=10)
    assert event["kind"] == "evaluation.done"
    await stream.aclose()
