"""Cancelling one agent's evaluation ends its runs and only its runs: a second agent in
the same process (the demo runs two) finishes its own evaluation untouched."""

import asyncio
import difflib
import os
import time

import pytest

from agent_fixtures import make_bounty
from l402tui.agent.public_eval import Candidate, HarnessEvaluator
from l402tui.bounty import load_bounty


def slow_diff(spec, seconds: float, pid_dir) -> str:
    """model.py records its pid (the local runner sees host paths), then sleeps."""
    old = (spec.target_path / "model.py").read_text()
    new = (f"import os, pathlib, time\n(pathlib.Path({str(pid_dir)!r}) / str(os.getpid())).touch()\n"
           f"time.sleep({seconds})\n") + old
    body = "".join(difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True),
                                        "a/model.py", "b/model.py"))
    return "diff --git a/model.py b/model.py\n" + body


async def test_cancelling_one_evaluation_leaves_the_other_running(tmp_path):
    spec = load_bounty(make_bounty(tmp_path / "bounty", repeats=2))
    doomed_pids, other_pids = tmp_path / "doomed", tmp_path / "other"
    doomed_pids.mkdir()
    other_pids.mkdir()
    evaluator = HarnessEvaluator(parallel=2)
    doomed = asyncio.create_task(evaluator.evaluate(Candidate(spec, slow_diff(spec, 60, doomed_pids)), 2))
    other = asyncio.create_task(evaluator.evaluate(Candidate(spec, slow_diff(spec, 2, other_pids)), 2))
    end = time.monotonic() + 30
    while len(list(doomed_pids.iterdir())) < 2 and time.monotonic() < end:
        await asyncio.sleep(0.05)  # both of the doomed evaluation's repeats are running
    doomed.cancel()
    with pytest.raises(asyncio.CancelledError):
        await doomed
    score = await other
    assert score.repeats == 2 and "error" in score.metrics  # untouched by the other's cancel
    # The cancelled evaluation's runs were ended, not left to sleep out their 60 s.
    pids = [int(p.name) for p in doomed_pids.iterdir()]
    assert len(pids) == 2
    end = time.monotonic() + 10
    while any(alive(pid) for pid in pids) and time.monotonic() < end:
        await asyncio.sleep(0.05)
    assert not any(alive(pid) for pid in pids)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"  # a zombie has ended
    except OSError:
        return False
