"""Evaluations judged on a real local Ray cluster: a head and node processes started
here with `ray start` on 127.0.0.1, each in its own process group, killed by group at
the end (never `ray stop`, which would end every Ray process of this machine)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest

ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'l402tui[ray]'")

from l402tui.bounty import load_bounty  # noqa: E402
from l402tui.config import load_config  # noqa: E402
from l402tui.evaluation.ray_executor import cluster_gpu_refusal  # noqa: E402
from l402tui.evaluation.worker import run_worker  # noqa: E402
from l402tui.store.db import Store  # noqa: E402
from test_queue import _held_fix  # noqa: E402
from tinybounty import FIX_DIFF, make_sums  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.ray]
RAY = str(Path(sys.executable).with_name("ray"))


class LocalRayCluster:
    """A head and worker nodes on 127.0.0.1, each a `ray start --block` in its own session."""

    def __init__(self) -> None:
        self.temp = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # Ray's socket paths must stay short
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        self.procs: list[subprocess.Popen] = []
        self.env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0")

    def _start(self, args: list[str], name: str) -> subprocess.Popen:
        out = open(Path(self.temp) / f"{name}.out", "w")
        proc = subprocess.Popen([RAY, "start", "--block", "--node-ip-address=127.0.0.1", "--disable-usage-stats",
                                 *args], start_new_session=True, env=self.env, stdout=out, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def head(self, cpus: int) -> None:
        self._start(["--head", f"--port={self.port}", f"--num-cpus={cpus}", f"--temp-dir={self.temp}",
                     "--include-dashboard=false"], "head")
        self.wait_nodes(1, timeout=90)

    def node(self, cpus: int, gpus: int = 0, resources: str = "{}") -> subprocess.Popen:
        before = self.alive()
        proc = self._start([f"--address={self.address}", f"--num-cpus={cpus}", f"--num-gpus={gpus}",
                            f"--resources={resources}"], f"node{len(self.procs)}")
        self.wait_nodes(before + 1)
        return proc

    def alive(self) -> int:
        probe = subprocess.run([sys.executable, "-c", _COUNT_NODES, self.address], capture_output=True, text=True,
                               timeout=60, env=self.env)
        return int(probe.stdout.strip() or 0)

    def wait_nodes(self, n: int, timeout: float = 180) -> None:  # a loaded 2-core box took > 60 s
        until = time.time() + timeout
        while self.alive() < n:
            if time.time() > until:
                logs = "".join(p.read_text()[-2000:] for p in Path(self.temp).glob("*.out"))
                raise AssertionError(f"the Ray cluster did not reach {n} nodes:\n{logs}")
            time.sleep(0.5)

    def kill(self, proc: subprocess.Popen) -> None:
        """SIGKILL a node as a power cut would: its group (raylet, GCS, agents) and every
        descendant (Ray's workers start their own sessions, so the group alone misses them)."""
        try:
            family = psutil.Process(proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            family = []
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        for child in family:
            try:
                child.kill()
            except psutil.NoSuchProcess:
                pass
        proc.wait(15)
        psutil.wait_procs(family, timeout=15)

    def stop(self) -> None:
        # SIGKILL, not SIGTERM: a head drains for up to 30 s, and nothing of a test cluster is kept.
        for proc in reversed(self.procs):
            self.kill(proc)
        shutil.rmtree(self.temp, ignore_errors=True)


# Counted from a separate process, so the test's own driver joins only when the worker does.
_COUNT_NODES = ("import sys, ray; ray.init(address=sys.argv[1], log_to_driver=False, configure_logging=False);"
                "print(sum(1 for n in ray.nodes() if n['Alive']))")


@pytest.fixture
def cluster():
    c = LocalRayCluster()
    try:
        yield c
    finally:
        if ray.is_initialized():
            ray.shutdown()  # this process's driver: the next test joins its own cluster
        c.stop()


def _cfg(tmp_path: Path, address: str, executor: str = "ray", **more):
    return load_config(tmp_path / "none.toml", env={}).with_overrides({
        "paths.data_dir": str(tmp_path / "data"), "evaluation.executor": executor,
        "evaluation.ray_address": address, "evaluation.sandbox": "local", "evaluation.allow_unsandboxed": True,
        **{f"evaluation.{k}": v for k, v in more.items()}})


async def _seed(store: Store, bounty: Path, diffs: dict[str, str]) -> None:
    from l402tui.evaluation.queue import EvaluationQueue

    now = time.time()
    async with store.transaction() as txn:
        await txn.insert("bounties", {"id": "b1", "name": "sums", "status": "OPEN", "spec_json": "{}",
                                      "source_dir": str(bounty), "pool_msat": 1, "created_at": now,
                                      "updated_at": now})
        for sid, diff in diffs.items():
            await txn.insert("submissions", {"id": sid, "bounty_id": "b1", "status": "QUEUED", "diff": diff,
                                             "created_at": now, "updated_at": now})
    queue = EvaluationQueue(store)
    for sid in diffs:
        await queue.enqueue("b1", kind="submission", submission_id=sid)


def _verdicts():
    seen: list[tuple[str, str, dict]] = []

    async def on_done(txn, row, result):
        seen.append((row["submission_id"], result.status, dict(result.medians)))

    return seen, on_done


async def test_submissions_are_judged_on_the_cluster_as_the_local_worker_judges_them(tmp_path, cluster):
    cluster.head(cpus=1)
    cluster.node(cpus=1)
    bounty = make_sums(tmp_path / "sums")
    broken = FIX_DIFF.replace("@@ -1,6 +1,6 @@", "@@ -1,6 +1,7 @@").replace(
        "+SKIP_NEGATIVE = False", "+SKIP_NEGATIVE = False\n+raise SystemExit(3)")
    assert broken.count("SystemExit") == 1
    judged = {}
    for executor in ("local", "ray"):
        store = await Store.open(tmp_path / f"{executor}.sqlite")
        await _seed(store, bounty, {"fix": FIX_DIFF, "broken": broken})
        seen, on_done = _verdicts()
        lines: list[tuple[int, str]] = []
        cfg = _cfg(tmp_path / executor, cluster.address, executor)
        done = await asyncio.wait_for(run_worker(store, cfg, idle_exit=True, on_done=on_done,
                                                 on_log=lambda eid, line: lines.append((eid, line))), 180)
        assert done == 2 and len(seen) == 2
        rows = await store.fetchall("SELECT e.id, e.status, e.metrics_json, e.attempts, r.log_path FROM evaluations e "
                                    "LEFT JOIN eval_runs r ON r.evaluation_id = e.id ORDER BY e.id")
        judged[executor] = {sid: (status, medians.get("accuracy")) for sid, status, medians in seen}
        if executor == "ray":
            node_ids = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
            for row in rows:
                node = (cfg.data_dir / "eval-logs" / str(row["id"]) / "attempt-1" / "ray-node.txt").read_text()
                assert node.strip() in node_ids  # judged by a node of this cluster
                assert any(eid == row["id"] and line.startswith("ray: judged on node") for eid, line in lines)
            fix_log = next(Path(r["log_path"]) for r in rows if r["status"] == "DONE")
            assert fix_log.is_relative_to(cfg.data_dir) and "solved" in fix_log.read_text()
        await store.close()
    assert judged["ray"] == judged["local"]
    assert judged["ray"]["fix"] == ("ok", 1.0) and judged["ray"]["broken"][0] == "failed"


async def test_a_node_killed_mid_evaluation_requeues_it_and_one_verdict_results(tmp_path, cluster):
    # evaluation.ray_resources keeps evaluations off the head (the coordinator's machine) and on
    # rigs, so the run is on the node this test kills.
    cluster.head(cpus=1)
    first = cluster.node(cpus=1, resources='{"rig": 1}')
    bounty = make_sums(tmp_path / "sums")
    started, hold = tmp_path / "started", tmp_path / "hold"
    hold.touch()
    store = await Store.open(tmp_path / "db.sqlite")
    await _seed(store, bounty, {"s1": _held_fix(bounty, started, hold)})
    seen, on_done = _verdicts()
    stop = asyncio.Event()
    cfg = _cfg(tmp_path, cluster.address, ray_resources={"rig": 1})
    worker = asyncio.create_task(run_worker(store, cfg, stop=stop, on_done=on_done))
    try:
        await _until(started.exists, 120, "the evaluation never started on the node")
        cluster.kill(first)
        # The worker claims it again at once (Ray holds it until a node can run it): look for the event.
        await _until_async(lambda: _requeued(store), 90, "the lost evaluation was not re-queued")
        assert seen == []
        started.unlink()
        hold.unlink()
        await asyncio.to_thread(cluster.node, 1, 0, '{"rig": 1}')
        await _until_async(lambda: _status(store, "DONE"), 120, "the re-queued evaluation was not judged")
    finally:
        stop.set()
        await asyncio.wait_for(worker, 30)
    row = await store.fetchone("SELECT status, attempts FROM evaluations")
    assert (row["status"], row["attempts"]) == ("DONE", 2)
    assert [(sid, status, medians["accuracy"]) for sid, status, medians in seen] == [("s1", "ok", 1.0)]
    reasons = [json.loads(r["payload_json"]).get("reason", "") for r in await store.fetchall(
        "SELECT payload_json FROM events WHERE kind = 'evaluation.requeued'")]
    assert len(reasons) == 1 and "Ray node running it went away" in reasons[0]
    await store.close()


async def test_a_gpu_bounty_is_accepted_when_a_ray_node_offers_a_gpu(tmp_path, cluster):
    cluster.head(cpus=1)
    root = make_sums(tmp_path / "g")
    toml = root / "bounty.toml"
    toml.write_text(toml.read_text().replace("[resources]\n", "[resources]\ngpu = true\n", 1))
    spec = load_bounty(root)
    settings = _cfg(tmp_path, cluster.address).section("evaluation")
    message = await asyncio.to_thread(cluster_gpu_refusal, spec, settings)
    assert message is not None and "no node of the Ray cluster" in message and cluster.address in message
    await asyncio.to_thread(cluster.node, 1, 1)  # a rig that declares one GPU to Ray
    assert await asyncio.to_thread(cluster_gpu_refusal, spec, settings) is None


async def _requeued(store: Store) -> bool:
    return bool(await store.scalar("SELECT COUNT(*) FROM events WHERE kind = 'evaluation.requeued'"))


async def _status(store: Store, status: str) -> bool:
    return (await store.fetchone("SELECT status FROM evaluations"))["status"] == status


async def _until(check, timeout: float, what: str) -> None:
    until = time.time() + timeout
    while not check():
        assert time.time() < until, what
        await asyncio.sleep(0.1)


async def _until_async(check, timeout: float, what: str) -> None:
    until = time.time() + timeout
    while not await check():
        assert time.time() < until, what
        await asyncio.sleep(0.2)
