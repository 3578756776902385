"""Sandbox and coordinator overhead, printed (never asserted).

1. Start-to-exit of a trivial command (``true``, then ``python3 -c pass``) per runner,
   as the harness calls it (``Sandbox.run``: layout prepared, limits, log pump,
   measurements; for docker also the engine inspect and removal).  Targets from
   issue 5: bwrap <= 30 ms, docker <= 300 ms.
   Then what the disk limit adds per run (its set-up and finish, tmpfs and watcher).
2. Coordinator overhead per submission, excluding the evaluation itself: diff check,
   queue claim (one transaction), completion with eval_runs and the verdict
   (one transaction), scoring and anti-gaming against 50 earlier diffs.  Target
   <= 100 ms.

    .venv/bin/python bench/sandbox_overhead.py [--runs 20] [--runners local,bwrap,docker]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "evaluation"))

from l402tui.bounty import load_bounty  # noqa: E402
from l402tui.evaluation import antigaming, scoring  # noqa: E402
from l402tui.evaluation.harness import EvaluationResult, RepeatRun, check_diff  # noqa: E402
from l402tui.evaluation.queue import EvaluationQueue  # noqa: E402
from l402tui.evaluation.runners import bwrap_status, docker_status, make_sandbox  # noqa: E402
from l402tui.evaluation.sandbox import Layout, Limits  # noqa: E402
from l402tui.evaluation.untrusted_log import LogSink  # noqa: E402
from l402tui.store.db import Store  # noqa: E402
from tinybounty import FIX_DIFF, make_sums  # noqa: E402


def _stats(samples: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples)
    p90 = ms[min(len(ms) - 1, int(len(ms) * 0.9))]
    return f"median {statistics.median(ms):7.1f} ms   min {ms[0]:7.1f}   p90 {p90:7.1f}   (n={len(ms)})"


def runner_overhead(kind: str, runs: int) -> None:
    sandbox = make_sandbox(kind)
    limits = Limits(memory_mb=256, time_limit_s=30)
    # bwrap keeps a spare started ahead (bwrap_spare.py): "back to back" starts the next
    # run the moment the last ended (the spare may still be starting); "spare ready"
    # waits, off the clock, until it waits -- as it does in the harness, where scoring
    # and copying come between two runs.
    modes = ["back to back", "spare ready"] if hasattr(sandbox, "spare_ready") else [""]
    for argv in (["true"], ["python3", "-c", "pass"]):
        for mode in modes:
            samples = []
            for i in range(runs + 1):
                root = Path(tempfile.mkdtemp(prefix="l402bench-"))
                root.chmod(0o711)
                layout = Layout(root / "w", root / "i", root / "a")
                for d in (layout.workdir, layout.inputs, layout.artifacts):
                    d.mkdir()
                if mode == "spare ready":
                    end = time.monotonic() + 5
                    while not sandbox.spare_ready(limits) and time.monotonic() < end:
                        time.sleep(0.002)
                t0 = time.perf_counter()
                outcome = sandbox.run(argv, layout, limits, log=LogSink(root / "log", 4096))
                elapsed = time.perf_counter() - t0
                shutil.rmtree(root, ignore_errors=True)
                if not outcome.ok:
                    raise SystemExit(f"{kind} {argv}: {outcome.describe_failure()}")
                if i:  # the first run warms caches (image layers, python pages)
                    samples.append(elapsed)
            label = f"{' '.join(argv)}{f' ({mode})' if mode else ''}"
            print(f"{kind:>6} {label:<34} {_stats(samples)}")
    raw = _raw_command(kind)
    if raw:
        # The bare tool on the same host at the same moment: what our layer adds is the difference.
        samples = []
        for i in range(runs + 1):
            t0 = time.perf_counter()
            subprocess.run(raw, check=True, capture_output=True)
            if i:
                samples.append(time.perf_counter() - t0)
        print(f"{'bare':>6} {kind + ' true':<34} {_stats(samples)}")


def disk_overhead(runs: int) -> None:
    """What the disk limit (run_disk.py) adds to a run: set-up and finish around a small
    work tree, for each way of enforcing it this process can use, then a whole local
    run of `true` in each."""
    from l402tui.evaluation.run_disk import RunDisk, disk_mode
    from l402tui.evaluation.sandbox import LocalSandbox

    modes = ["tmpfs", "watch"] if disk_mode() == "tmpfs" else ["watch"]
    for mode in modes:
        samples, whole = [], []
        sandbox = LocalSandbox()
        sandbox.disk_mode = mode
        for i in range(runs + 1):
            root = Path(tempfile.mkdtemp(prefix="l402bench-"))
            root.chmod(0o711)
            work, art, inputs = root / "w", root / "a", root / "i"
            for d in (work, art, inputs):
                d.mkdir()
            for n in range(20):  # a target of 20 small files, like the samples'
                (work / f"f{n}.py").write_text("x = 1\n" * 200)
            t0 = time.perf_counter()
            RunDisk(work, art, 512, None, mode).finish()
            t1 = time.perf_counter()
            outcome = sandbox.run(["true"], Layout(work, inputs, art), Limits(memory_mb=256, time_limit_s=30),
                                  log=LogSink(root / "log", 4096))
            t2 = time.perf_counter()
            shutil.rmtree(root, ignore_errors=True)
            assert outcome.ok, outcome
            if i:
                samples.append(t1 - t0)
                whole.append(t2 - t1)
        print(f"{'disk':>6} {mode + ' set-up + finish':<34} {_stats(samples)}")
        print(f"{'local':>6} {'true, disk ' + mode:<34} {_stats(whole)}")


def _raw_command(kind: str) -> list[str] | None:
    if kind == "bwrap":
        from l402tui.evaluation.sandbox import BwrapSandbox

        return [*BwrapSandbox().base_args(), "--proc", "/proc", "--dev", "/dev", "--", "true"]
    if kind == "docker":
        return ["docker", "run", "--rm", "--network", "none", "--pull", "never", "l402tui-base:bookworm", "true"]
    return None


async def coordinator_overhead(runs: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="l402bench-"))
    spec = load_bounty(make_sums(tmp / "sums"))
    store = await Store.open(tmp / "db.sqlite")
    queue = EvaluationQueue(store)
    earlier = [(f"s{i}", FIX_DIFF.replace("False", f"False  # variant {i}\n+X{i} = {i}")) for i in range(50)]
    now = time.time()
    async with store.transaction() as txn:
        await txn.insert("bounties", {"id": "b", "name": "sums", "status": "OPEN", "spec_json": "{}",
                                      "pool_msat": 1, "created_at": now, "updated_at": now})
    result = EvaluationResult("ok", [], {"accuracy": 1.0, "canary_matches": 0.0}, {"accuracy": 0.0},
                              [RepeatRun(r, {"accuracy": 1.0, "canary_matches": 0.0}, 0.1, 0.1, 10.0, 0, "/dev/null")
                               for r in range(3)], sandbox="bwrap")
    samples = []
    for i in range(runs + 1):
        t0 = time.perf_counter()
        assert check_diff(spec, FIX_DIFF) == []
        async with store.transaction() as txn:
            await txn.insert("submissions", {"id": f"x{i}", "bounty_id": "b", "status": "QUEUED", "diff": FIX_DIFF,
                                             "created_at": now, "updated_at": now})
            await queue.enqueue("b", kind="submission", submission_id=f"x{i}", txn=txn)
        row = await queue.claim("bwrap")

        async def on_done(txn, row, res):
            v = scoring.verdict(spec, res.medians, baseline_medians={"accuracy": 0.4}, baseline_spreads={})
            flags = [f for f in (antigaming.canary_flag(r.metrics for r in res.runs),
                                 antigaming.near_duplicate_flag(FIX_DIFF, earlier, 0.9)) if f]
            await txn.execute("UPDATE submissions SET status = ?, verdict_json = ? WHERE id = ?",
                              ("FLAGGED" if flags else "ACCEPTED" if v.accepted else "REJECTED",
                               str(v.to_json()), row["submission_id"]))

        assert await queue.complete(row, result, on_done=on_done)
        if i:
            samples.append(time.perf_counter() - t0)
    await store.close()
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"coordinator per submission (check, enqueue, claim, complete+verdict, 50-diff dedupe): {_stats(samples)}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--runners", default="local,bwrap,docker")
    args = parser.parse_args()
    load = os.getloadavg()
    print(f"host: {os.cpu_count()} cores, load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    for kind in args.runners.split(","):
        problem = {"docker": lambda: docker_status("l402tui-base:bookworm"), "bwrap": bwrap_status}.get(kind)
        status = problem() if problem else None
        if status is not None and not status.available:
            print(f"{kind:>6} skipped: {status.detail}")
            continue
        runner_overhead(kind, args.runs)
    disk_overhead(args.runs)
    asyncio.run(coordinator_overhead(args.runs))


if __name__ == "__main__":
    main()
