"""SIGTERM while a submission is being evaluated in a real sandbox (bwrap, docker):
`serve` kills the sandbox, re-queues the work and exits 0 within 5 s; the next start
evaluates it again and the submission gets exactly one verdict."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time

import aiohttp
import psutil
import pytest

from l402tui.config import load_config
from l402tui.l402.client import L402Client
from l402tui.lightning.sim import SimNetwork
from tests.coordinator.conftest import make_bounty
from tests.coordinator.serve_proc import serve_env, start_serve, stop_within
from tests.evaluation.runners_fixture import require_runner

# The run sleeps until an absolute time: long enough to be interrupted by the first
# start, already past (or nearly) when the second start runs it again.
SLEEPY_DIFF = '''\
--- a/solve.py
+++ b/solve.py
@@ -1,5 +1,7 @@
 import json, pathlib, sys
+import time
+time.sleep(max(0.0, {until} - time.time()))
 inputs, artifacts = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
 nums = json.loads((inputs / "nums.json").read_text())
-OFFSET = 3
+OFFSET = 1
 (artifacts / "answer.json").write_text(json.dumps(sum(nums) + OFFSET))
'''
VERDICTS = {"ACCEPTED", "REJECTED", "FLAGGED"}


async def _get(session, info, path):
    async with session.get(info["base"] + path, headers={"Authorization": f"Bearer {info['token']}"}) as r:
        assert r.status == 200, (path, r.status, await r.text())
        return await r.json()


async def _until(what, check, timeout):
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


def _sandbox_processes(pid: int, kind: str) -> list[psutil.Process]:
    names = {"docker": ("docker",), "bwrap": ("bwrap", "python3")}[kind]
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    return [c for c in children if c.name() in names]


def _alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    out = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.NoSuchProcess:
            pass
    return out


@pytest.mark.slow
@pytest.mark.parametrize("kind", [pytest.param("bwrap", marks=pytest.mark.bwrap),
                                  pytest.param("docker", marks=pytest.mark.docker)])
async def test_sigterm_during_an_evaluation_stops_in_5s_and_the_next_start_gives_one_verdict(tmp_path, kind):
    require_runner(kind)
    data = tmp_path / "data"
    env = serve_env(L402TUI_EVALUATION__SANDBOX=kind, L402TUI_RATE_LIMITS__PER_IP_PER_MINUTE="100000")
    proc, info = start_serve(data, env=env)
    cfg = load_config(tmp_path / "none.toml", env={}).with_overrides({"paths.data_dir": str(data)})
    net = SimNetwork.from_config(cfg)
    try:
        await net.create_node("agent-1", 100_000_000, exist_ok=True)
        async with aiohttp.ClientSession() as session:
            async with session.post(info["base"] + "/api/v1/admin/bounties",
                                    headers={"Authorization": f"Bearer {info['token']}"},
                                    json={"path": str(make_bounty(tmp_path / "sponsor")), "self_funded": True}) as r:
                assert r.status == 201, await r.text()
                bounty_id = (await r.json())["bounty"]["id"]

            async def baseline_measured():
                bounty = await _get(session, info, f"/api/v1/bounties/{bounty_id}")
                assert bounty["baseline"]["status"] != "failed", bounty["baseline"]
                return bounty["baseline"]["status"] == "measured"

            await _until("the baseline", baseline_measured, 60)
            until = time.time() + 18
            async with L402Client(net.node("agent-1"), spend_cap_sats=100) as client:
                sub = await client.post(info["base"] + f"/api/v1/bounties/{bounty_id}/submissions",
                                        json={"diff": SLEEPY_DIFF.format(until=until), "claimed_score": 0.0})
                assert sub.status == 202, sub.text
                sub_id = sub.json()["id"]

            async def running_in_sandbox():
                rows = (await _get(session, info, f"/api/v1/admin/evaluations?submission_id={sub_id}"))["evaluations"]
                procs = _sandbox_processes(proc.pid, kind)
                return procs if rows and rows[0]["status"] == "RUNNING" and procs else None

            sandboxes = await _until("the evaluation's sandbox", running_in_sandbox, 30)
            await asyncio.sleep(0.5)
            containers = [arg for p in sandboxes for arg in p.cmdline() if arg.startswith("l402tui-eval-")]
        assert time.time() < until - 5, "the machine was too slow to interrupt the run while it slept"
        took, err = stop_within(proc, signal.SIGTERM, 5)
        assert proc.returncode == 0, err
        assert took < 5, f"serve took {took:.1f} s to stop; stderr: {err[-2000:]}"
        assert "Traceback" not in err, err
        assert not _alive(sandboxes), "a sandbox process outlived serve"
        for name in containers:
            listed = subprocess.run(["docker", "ps", "-a", "-q", "--filter", f"name={name}"],
                                    capture_output=True, text=True, timeout=30).stdout.strip()
            assert not listed, f"container {name} outlived serve"

        # The second start finishes the work: one evaluation row, one verdict.
        proc, info = start_serve(data, env=env)
        async with aiohttp.ClientSession() as session:
            async def verdict():
                sub = await _get(session, info, f"/api/v1/submissions/{sub_id}")
                return sub if sub["status"] in VERDICTS else None

            decided = await _until("the verdict after the restart", verdict, 90)
            rows = (await _get(session, info, f"/api/v1/admin/evaluations?submission_id={sub_id}"))["evaluations"]
            events = (await _get(session, info, "/api/v1/admin/events?after=0&limit=1000"))["events"]
        assert [(r["status"], r["attempts"]) for r in rows] == [("DONE", 1)], rows
        decisions = [e for e in events if e["kind"] == "submission.status" and e["subject_id"] == sub_id
                     and e["payload"].get("status") in VERDICTS]
        assert [e["payload"]["status"] for e in decisions] == [decided["status"]], decisions
        requeued = [e for e in events if e["kind"] == "evaluation.requeued" and e["payload"].get("reason") == "stopped"]
        assert requeued, "the stop did not re-queue the evaluation"
    finally:
        if proc.poll() is None:
            took, _ = stop_within(proc, signal.SIGTERM, 5)
        await net.close()
