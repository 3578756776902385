"""Evaluations per hour with one slot and with every slot, and what sharing does to noise.

One fixed batch of sample-bounty evaluations (for each bounty: its baseline, then honest
improvements and unchanged resubmissions) is worked twice by the real worker
(``run_worker``, real sandbox, real store): once on a machine of one core (serial), once
on every core.  Printed, never asserted:

* evaluations per hour for each, and the speed-up against linear in the slots;
* each submission's verdict (``scoring.verdict`` against its bounty's baseline measured in
  the same run, so on slots of the same kind) in both runs, and whether they agree;
* CPU-second noise: the median, over the batch, of each evaluation's robust σ of ``cpu_s``
  across its repeats (relative to its median), with one slot and with every slot busy,
  against the bounty's acceptance bar ``min_improvement`` and ``k_sigma``.

The parallel run sets ``evaluation.exclusive_timing = false``: measuring whether timing
bounties may share the machine is the point.

    .venv/bin/python bench/eval_throughput.py [--sandbox bwrap] [--copies 2]
"""

from __future__ import annotations

import argparse
import asyncio
import difflib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from l402tui.bounty import load_bounty  # noqa: E402
from l402tui.config import load_config  # noqa: E402
from l402tui.evaluation import scoring  # noqa: E402
from l402tui.evaluation.queue import EvaluationQueue  # noqa: E402
from l402tui.evaluation.runners import make_sandbox  # noqa: E402
from l402tui.evaluation.slots import Machine  # noqa: E402
from l402tui.evaluation.worker import run_worker  # noqa: E402
from l402tui.store.db import Store  # noqa: E402

# (sample, file, edits) of an honest improvement, as the samples document them.
HONEST = {
    "logparse": ("logparse.py", [('TIMESTAMP_PARSER = "strptime"', 'TIMESTAMP_PARSER = "slicing"'),
                                 ('DISTINCT_WITH = "list"', 'DISTINCT_WITH = "set"'),
                                 ('LINE_REGEX = "per_line"', 'LINE_REGEX = "once"')]),
    "gpumlp": ("model.py", [("HIDDEN = 32 ", "HIDDEN = 128 "), ("LEARNING_RATE = 0.02 ", "LEARNING_RATE = 0.1 "),
                            ("BATCH_SIZE = 64 ", "BATCH_SIZE = 128 ")]),
}
NOOP_COMMENT = "\n# an unchanged resubmission\n"


def _diff(spec, rel: str, edits) -> str:
    old = (spec.target_path / rel).read_text()
    new = old
    for before, after in edits:
        new = new.replace(before, after)
    if new == old:
        new = old + NOOP_COMMENT
    body = "".join(difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True),
                                        f"a/{rel}", f"b/{rel}"))
    return f"diff --git a/{rel} b/{rel}\n" + body


async def _seed(store: Store, work: Path, copies: int, cpu_path: bool) -> list[tuple[str, str]]:
    """Bounties (frozen copies), their baselines, then interleaved submissions; returns (id, bounty)."""
    queue = EvaluationQueue(store)
    subs: list[tuple[str, str]] = []
    now = time.time()
    for name, (rel, edits) in HONEST.items():
        src = work / "bounties" / name
        if not src.exists():
            shutil.copytree(ROOT / "sample_bounties" / name, src, ignore=shutil.ignore_patterns("tools", "__pycache__"))
            toml = src / "bounty.toml"  # gpumlp's CPU path where there is no GPU (as CI audits it)
            if cpu_path or not Machine.detect({}).gpus:
                toml.write_text(toml.read_text().replace("gpu = true", "gpu = false"))
        spec = load_bounty(src)
        async with store.transaction() as txn:
            await txn.insert("bounties", {"id": name, "name": name, "status": "OPEN", "spec_json": "{}",
                                          "source_dir": str(src), "pool_msat": 1, "created_at": now,
                                          "updated_at": now})
        await queue.enqueue(name, kind="baseline")
        for i in range(copies):
            for label, diff in (("honest", _diff(spec, rel, edits)), ("same", _diff(spec, rel, []))):
                sid = f"{name}-{label}-{i}"
                async with store.transaction() as txn:
                    await txn.insert("submissions", {"id": sid, "bounty_id": name, "status": "QUEUED",
                                                     "diff": diff, "created_at": now, "updated_at": now})
                await queue.enqueue(name, kind="submission", submission_id=sid)
                subs.append((sid, name))
    return subs


async def one_run(label: str, cores: tuple[int, ...], sandbox_kind: str, copies: int, work: Path,
                  exclusive_timing: bool = False, cpu_path: bool = False) -> dict:
    run_dir = work / label
    run_dir.mkdir(parents=True)
    store = await Store.open(run_dir / "db.sqlite")
    subs = await _seed(store, work, copies, cpu_path)
    cfg = load_config(run_dir / "none.toml", env={}).with_overrides({
        "paths.data_dir": str(run_dir / "data"), "evaluation.exclusive_timing": exclusive_timing,
        "evaluation.allow_unsandboxed": True})
    sandbox = make_sandbox(sandbox_kind)
    started = time.monotonic()
    done = await run_worker(store, cfg, idle_exit=True, sandbox=sandbox, machine=Machine(cores, () if cpu_path else Machine.detect({}).gpus))
    elapsed = time.monotonic() - started
    rows = {r["id"]: r for r in await store.fetchall("SELECT * FROM evaluations")}
    baselines = {r["bounty_id"]: r for r in rows.values() if r["kind"] == "baseline"}
    verdicts, noise, failed = {}, {}, 0
    for r in rows.values():
        if r["status"] != "DONE":
            print(f"  {label}: evaluation {r['id']} {r['status']}: {r['error']}")
            failed += 1
            continue
        med, spr = json.loads(r["metrics_json"]), json.loads(r["spread_json"])
        if med.get("cpu_s"):
            noise.setdefault(r["bounty_id"], []).append(spr.get("cpu_s", 0.0) / med["cpu_s"])
        if r["kind"] == "submission":
            base = baselines[r["bounty_id"]]
            spec = load_bounty(work / "bounties" / r["bounty_id"])
            v = scoring.verdict(spec, med, baseline_medians=json.loads(base["metrics_json"]),
                                baseline_spreads=json.loads(base["spread_json"]))
            verdicts[r["submission_id"]] = "ACCEPTED" if v.accepted else "REJECTED"
    await store.close()
    return {"label": label, "slots": len(cores), "evaluations": done, "elapsed_s": elapsed,
            "per_hour": done / elapsed * 3600, "verdicts": verdicts, "noise": noise, "subs": subs,
            "failed": failed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sandbox", default="bwrap")
    parser.add_argument("--copies", type=int, default=2, help="honest + unchanged submissions per bounty, each")
    parser.add_argument("--as-shipped", action="store_true",
                        help="keep evaluation.exclusive_timing = true (the default): bounties paying for "
                             "CPU or wall time run alone, the rest share the slots")
    parser.add_argument("--only", choices=sorted(HONEST), action="append",
                        help="batch only these sample bounties (e.g. gpumlp: scored on accuracy alone)")
    parser.add_argument("--cpu-path", action="store_true",
                        help="judge gpumlp on its CPU path even where there is a GPU (to measure core scaling; "
                             "with a GPU each gpumlp evaluation holds one whole GPU, so one GPU runs them one by one)")
    args = parser.parse_args()
    for name in set(HONEST) - set(args.only or HONEST):
        del HONEST[name]
    cores = tuple(sorted(os.sched_getaffinity(0)))
    work = Path(tempfile.mkdtemp(prefix="l402tui-bench-"))
    work.chmod(0o711)
    try:
        serial = asyncio.run(one_run("serial", cores[:1], args.sandbox, args.copies, work, cpu_path=args.cpu_path))
        parallel = asyncio.run(one_run("parallel", cores, args.sandbox, args.copies, work, args.as_shipped,
                                       cpu_path=args.cpu_path))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nsandbox {args.sandbox}, {len(cores)} cores, batch of {serial['evaluations']} evaluations "
          f"({len(HONEST)} bounties: baseline, {args.copies} honest and {args.copies} unchanged submissions each)")
    for run in (serial, parallel):
        print(f"  {run['label']:>8}: {run['slots']} slot(s), {run['evaluations']} evaluations in "
              f"{run['elapsed_s']:.1f} s = {run['per_hour']:.0f} evaluations/hour")
    speedup = parallel["per_hour"] / serial["per_hour"]
    print(f"  speed-up {speedup:.2f}x with {parallel['slots']} slots ({speedup / parallel['slots']:.2f} of linear)")
    same = [s for s, _ in serial["subs"] if serial["verdicts"].get(s) == parallel["verdicts"].get(s)]
    print(f"  verdicts identical: {len(same)} of {len(serial['subs'])}")
    for sid, _ in serial["subs"]:
        print(f"    {sid:<22} serial {serial['verdicts'].get(sid, '-'):<9} parallel {parallel['verdicts'].get(sid, '-')}")
    print("  CPU-second noise (median relative σ of cpu_s across repeats, per bounty):")
    for bounty in HONEST:
        spec = load_bounty(ROOT / "sample_bounties" / bounty)
        s = statistics.median(serial["noise"].get(bounty, [0.0]))
        p = statistics.median(parallel["noise"].get(bounty, [0.0]))
        print(f"    {bounty:<9} 1 slot {s:6.1%}   {parallel['slots']} slots busy {p:6.1%}   "
              f"(k·σ at {spec.k_sigma:g}: {spec.k_sigma * s:5.1%} vs {spec.k_sigma * p:5.1%}; "
              f"min_improvement {spec.min_improvement:.0%})")
    if serial["failed"] or parallel["failed"]:
        sys.exit(f"{serial['failed'] + parallel['failed']} evaluation(s) did not finish DONE: the figures above "
                 "are not a throughput measurement")


if __name__ == "__main__":
    main()
