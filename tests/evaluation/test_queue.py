"""The evaluation queue survives crashes: no work lost, none run twice into a verdict."""

from __future__ import annotations

import asyncio
import difflib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from l402tui.evaluation.harness import EvaluationResult, RepeatRun
from l402tui.evaluation.queue import EvaluationQueue
from l402tui.store.db import Store
from tinybounty import FIX_DIFF, make_sums

ROOT = Path(__file__).resolve().parents[2]



def _held_fix(bounty: Path, started: Path, hold: Path) -> str:
    """The honest fix, whose run marks ``started`` and then waits while ``hold`` exists (30 s at
    most): the test kills the worker inside the run phase by a marker, not by a guessed time."""
    old = (bounty / "target" / "sumlib.py").read_text()
    lines = (f"import os, time\nopen({str(started)!r}, 'a').close()\n_until = time.time() + 30\n"
             f"while os.path.exists({str(hold)!r}) and time.time() < _until:\n    time.sleep(0.01)\n")
    new = lines + old.replace("SKIP_NEGATIVE = True", "SKIP_NEGATIVE = False")
    body = "".join(difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True),
                                        "a/sumlib.py", "b/sumlib.py"))
    return "diff --git a/sumlib.py b/sumlib.py\n" + body


async def _seed(store: Store, bounty_dir: Path, diff: str) -> int:
    now = time.time()
    async with store.transaction() as txn:
        await txn.insert("bounties", {"id": "b1", "name": "sums", "status": "OPEN", "spec_json": "{}",
                                      "source_dir": str(bounty_dir), "pool_msat": 1, "created_at": now,
                                      "updated_at": now})
        await txn.insert("submissions", {"id": "s1", "bounty_id": "b1", "status": "QUEUED", "diff": diff,
                                         "created_at": now, "updated_at": now})
    return await EvaluationQueue(store).enqueue("b1", kind="submission", submission_id="s1")


def _result(status="ok") -> EvaluationResult:
    return EvaluationResult(status, [] if status == "ok" else ["the run exited with code 1"],
                            {"accuracy": 1.0}, {"accuracy": 0.0},
                            [RepeatRun(0, {"accuracy": 1.0}, 0.1, 0.05, 10.0, 0, "/dev/null")], sandbox="local")


async def test_claim_marks_running_and_completion_happens_once(tmp_path):
    store = await Store.open(tmp_path / "db.sqlite")
    await _seed(store, tmp_path, FIX_DIFF)
    queue = EvaluationQueue(store)
    row = await queue.claim("bwrap")
    assert (row["status"], row["attempts"], row["sandbox"]) == ("RUNNING", 1, "bwrap")
    assert await queue.claim() is None  # nothing else queued; the running row is not handed out again

    verdicts: list[str] = []

    async def on_done(txn, row, result):
        verdicts.append(row["submission_id"])
        await txn.execute("UPDATE submissions SET status = 'ACCEPTED' WHERE id = ?", (row["submission_id"],))

    assert await queue.complete(row, _result(), on_done=on_done) is True
    assert await queue.complete(row, _result(), on_done=on_done) is False
    assert verdicts == ["s1"]
    ev = await store.fetchone("SELECT status, metrics_json FROM evaluations")
    assert (ev["status"], json.loads(ev["metrics_json"])) == ("DONE", {"accuracy": 1.0})
    assert await store.scalar("SELECT COUNT(*) FROM eval_runs") == 1
    await store.close()


async def test_failed_or_refused_evaluations_carry_their_reasons(tmp_path):
    store = await Store.open(tmp_path / "db.sqlite")
    await _seed(store, tmp_path, FIX_DIFF)
    queue = EvaluationQueue(store)
    row = await queue.claim()
    await queue.complete(row, _result("failed"))
    ev = await store.fetchone("SELECT status, error FROM evaluations")
    assert (ev["status"], ev["error"]) == ("FAILED", "the run exited with code 1")
    await store.close()


async def test_recover_requeues_then_gives_up_after_max_attempts(tmp_path):
    store = await Store.open(tmp_path / "db.sqlite")
    await _seed(store, tmp_path, FIX_DIFF)
    queue = EvaluationQueue(store, max_attempts=2)
    for expected in (1, 2):
        row = await queue.claim()
        assert row["attempts"] == expected
        requeued = await queue.recover()  # as if the process died mid-run
    assert requeued == []
    ev = await store.fetchone("SELECT status, error FROM evaluations")
    assert ev["status"] == "FAILED"
    assert ev["error"] == "the coordinator stopped during this evaluation 2 times; giving up (see the eval log)"
    await store.close()


async def test_worker_respects_concurrency_limit(tmp_path):
    store = await Store.open(tmp_path / "db.sqlite")
    await _seed(store, tmp_path, FIX_DIFF)
    queue = EvaluationQueue(store, max_concurrent=2)
    for _ in range(4):
        await queue.enqueue("b1", kind="baseline")
    running = peak = 0
    full = asyncio.Event()

    async def fake_evaluate(row):
        # The first evaluations hold their slots until the limit is reached, so the peak is
        # what the limit allows rather than what the timing happened to give.
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        if running == 2:
            full.set()
        await asyncio.wait_for(full.wait(), 10)
        await asyncio.sleep(0)  # let the queue try to start more while these still run
        running -= 1
        return _result()

    done = await queue.run(fake_evaluate, idle_exit=True, poll_s=0.05)
    assert (done, peak) == (5, 2)
    await store.close()


def _worker(db: Path, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "l402tui.evaluation.worker", "--db", str(db), "--idle-exit"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


async def test_kill_9_during_an_evaluation_then_restart_gives_one_verdict(tmp_path):
    bounty = make_sums(tmp_path / "sums", repeats=2)
    db = tmp_path / "db.sqlite"
    store = await Store.open(db)
    started, hold = tmp_path / "run-started", tmp_path / "hold-the-run"
    hold.touch()
    eval_id = await _seed(store, bounty, _held_fix(bounty, started, hold))
    env = {**os.environ, "L402TUI_EVALUATION__SANDBOX": "local", "L402TUI_EVALUATION__ALLOW_UNSANDBOXED": "true",
           "L402TUI_PATHS__DATA_DIR": str(tmp_path / "data")}

    first = _worker(db, env)
    deadline = time.monotonic() + 20
    while not started.exists():  # the first repeat's run phase has begun and is held
        assert time.monotonic() < deadline and first.poll() is None, "the worker never started the run"
        await asyncio.sleep(0.01)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    hold.unlink()  # the restarted worker's runs go straight through
    assert await store.scalar("SELECT status FROM evaluations") == "RUNNING"

    second = _worker(db, env)
    out, _ = second.communicate(timeout=60)
    assert second.returncode == 0, out
    assert '{"completed": 1}' in out

    ev = await store.fetchone("SELECT status, attempts, metrics_json FROM evaluations WHERE id = ?", (eval_id,))
    assert (ev["status"], ev["attempts"]) == ("DONE", 2)
    assert json.loads(ev["metrics_json"])["accuracy"] == 1.0
    assert await store.scalar("SELECT COUNT(*) FROM eval_runs WHERE evaluation_id = ?", (eval_id,)) == 2
    kinds = [r["kind"] for r in await store.fetchall("SELECT kind FROM events WHERE subject_id = ? ORDER BY id",
                                                     (str(eval_id),))]
    assert kinds == ["evaluation.queued", "evaluation.running", "evaluation.requeued", "evaluation.running",
                     "evaluation.done"]
    await store.close()


def test_sweep_removes_temp_dirs_of_dead_processes_only(tmp_path):
    from l402tui.evaluation.harness import OWNER_FILE, ROOT_PREFIX, sweep_stale_roots

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    for name, pid in (("dead", dead.stdout.strip()), ("alive", str(os.getpid()))):
        (tmp_path / f"{ROOT_PREFIX}{name}").mkdir()
        (tmp_path / f"{ROOT_PREFIX}{name}" / OWNER_FILE).write_text(pid)
    (tmp_path / f"{ROOT_PREFIX}unowned").mkdir()
    assert sweep_stale_roots(tmp_path) == [tmp_path / f"{ROOT_PREFIX}dead"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{ROOT_PREFIX}alive", f"{ROOT_PREFIX}unowned"]


def test_stale_empty_cgroups_are_swept_but_fresh_ones_kept(monkeypatch, tmp_path):
    from l402tui.evaluation import cgroups

    monkeypatch.setattr(cgroups.CgroupAccount, "ROOT", tmp_path)
    old, fresh, busy = tmp_path / "memory" / "l402tui-old", tmp_path / "memory" / "l402tui-fresh", \
        tmp_path / "pids" / "l402tui-busy"
    for d in (old, fresh, busy):
        d.mkdir(parents=True)
    (busy / "child").mkdir()  # not empty: rmdir refuses, as the kernel does for a group in use
    past = time.time() - 3600
    os.utime(old, (past, past))
    os.utime(busy, (past, past))
    assert cgroups.sweep_stale_cgroups() == 1
    assert not old.exists() and fresh.exists() and busy.exists()
