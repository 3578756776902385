"""Evaluations judged on a Ray cluster: several rigs behind one coordinator.

With ``evaluation.executor = "ray"`` the worker still works the same ``evaluations``
rows (queue.py: claim, one transaction per step, one verdict), but each claimed
evaluation becomes one Ray task that runs :func:`harness.evaluate` on whichever node
Ray picks.  The task gets the bounty's frozen folder as a tarball in the object store
(only the held-out set it is judged on has contents; the others travel as empty
folders), unpacks it into a fresh temp dir of that node, picks that node's own sandbox
(``evaluation.sandbox``: docker, bubblewrap, ...), and hands back the
:class:`EvaluationResult` and its eval logs through its return value only.

A node lost mid-run (killed, rebooted, its raylet crashed) fails the task; the row
goes back to QUEUED through :class:`EvaluationLost` (an attempt spent, so a diff that
keeps killing nodes ends FAILED), and the coordinator, the only writer of verdicts,
records exactly one.  Ray's own retries are off for the same reason.

Nodes are the operator's: trusted with the held-out data, never reachable by agents
(docs/scale-out.md, "Ray").  Ray is an optional extra: ``pip install 'l402tui[ray]'``.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import shutil
import tarfile
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

from l402tui.bounty import load_bounty
from l402tui.bounty.spec import BountySpec
from l402tui.config import Config
from l402tui.evaluation.harness import EvaluationResult, _limits, evaluate
from l402tui.evaluation.queue import HOLD, EvaluationLost, EvaluationQueue, OnDone, load_row_inputs
from l402tui.evaluation.reasons import Reason
from l402tui.evaluation.slots import Need, need_for
from l402tui.store.db import Store

log = logging.getLogger(__name__)

RAY_MISSING = ("evaluation.executor = \"ray\" needs Ray on the coordinator and on every node: "
               "pip install 'l402tui[ray]'")
# How many evaluations may wait on the cluster at once, whatever its size.
MAX_IN_FLIGHT = 256
BUNDLE_PREFIX = "l402tui-ray-"
OWNER_FILE = ".owner-pid"


class RayUnavailable(RuntimeError):
    """Ray is not installed, or the cluster at ``evaluation.ray_address`` does not answer."""


def _ray():
    try:
        import ray  # ~1 s to import: only when the operator chose Ray
    except ImportError:
        raise RayUnavailable(RAY_MISSING) from None
    return ray


def connect(address: str) -> Any:
    """Join the cluster at ``address`` as a driver (once per process); returns the ray module."""
    ray = _ray()
    if not ray.is_initialized():
        try:
            ray.init(address=address or "auto", namespace="l402tui", log_to_driver=False,
                     configure_logging=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise RayUnavailable(f"no Ray cluster answers at evaluation.ray_address = {address!r} ({exc}); "
                                 "start one with `ray start --head` or fix the address") from None
    return ray


def _alive_nodes(ray) -> list[dict[str, Any]]:
    return [n for n in ray.nodes() if n.get("Alive")]


def cluster_gpu_refusal(spec: BountySpec, settings: dict[str, Any]) -> str | None:
    """Why the Ray cluster cannot evaluate GPU bounty ``spec`` (no node offers a GPU), or None."""
    if not spec.gpu:
        return None
    address = settings.get("ray_address", "auto")
    try:
        ray = connect(address)
        gpus = max((n["Resources"].get("GPU", 0) for n in _alive_nodes(ray)), default=0)
    except RayUnavailable as exc:
        return f"this bounty asks for a GPU (resources.gpu = true), and the Ray cluster cannot be asked: {exc}"
    if gpus >= 1:
        return None
    return (f"this bounty asks for a GPU (resources.gpu = true) but no node of the Ray cluster at "
            f"{address!r} offers one; add a rig with an NVIDIA GPU (`ray start --address ... --num-gpus N`), "
            "or set resources.gpu = false if the code also runs on the CPU")


def pack_frozen(spec: BountySpec, heldout_index: int) -> bytes:
    """The frozen bounty folder as a gzip tarball for one evaluation: every held-out set but
    the one it is judged on is shipped as an empty folder (a node learns no other set)."""
    keep = spec.heldout_dirs[heldout_index % len(spec.heldout_dirs)]
    others = {Path(d).parts for d in spec.heldout_dirs if d != keep}
    root = spec.root

    def only_this_set(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        parts = Path(info.name).parts[1:]  # below "bounty/"
        if any(parts[:len(o)] == o and len(parts) > len(o) for o in others):
            return None
        if info.issym() or info.islnk():  # a frozen copy holds plain files; never ship a link out
            return None
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        return info

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(root, arcname="bounty", filter=only_this_set)
    return buf.getvalue()


def _unpack(bundle: bytes, dest: Path) -> Path:
    with tarfile.open(fileobj=io.BytesIO(bundle), mode="r:gz") as tar:
        tar.extractall(dest, filter="data")  # no absolute paths, no "..", no links out, no devices
    return dest / "bounty"


def _pack_logs(logs: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for path in sorted(logs.rglob("*")):
            if path.is_file() and not path.is_symlink():
                tar.add(path, arcname=str(path.relative_to(logs)))
    return buf.getvalue()


def _sweep_lost_bundles() -> None:
    """Remove unpacked bounties whose task died with its node's worker (kill -9 leaves them)."""
    for path in Path(tempfile.gettempdir()).glob(BUNDLE_PREFIX + "*"):
        try:
            pid = int((path / OWNER_FILE).read_text())
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except (OSError, ValueError):
            continue  # not ours to judge (another user's, or being set up right now)


def judge_on_node(bundle: bytes, diff: str | None, heldout_index: int,
                  settings: dict[str, Any]) -> tuple[EvaluationResult, bytes, str]:
    """The Ray task's body, on a node: unpack, pick this node's sandbox, evaluate.
    Returns the result, its eval logs (a gzip tarball) and the node's id."""
    from l402tui.evaluation.runners import image_for, pick_sandbox
    from l402tui.evaluation.sandbox import SandboxUnavailable
    from l402tui.telemetry.gpu import gpu_devices

    ray = _ray()
    node_id = ray.get_runtime_context().get_node_id()
    _sweep_lost_bundles()
    with tempfile.TemporaryDirectory(prefix=BUNDLE_PREFIX) as tmp:  # mode 0700: held-out labels stay ours
        (Path(tmp) / OWNER_FILE).write_text(str(os.getpid()))
        spec = load_bounty(_unpack(bundle, Path(tmp)))
        logs = Path(tmp) / "logs"
        logs.mkdir()
        limits = _limits(spec)
        if spec.gpu:
            # Ray chose this task's GPU and says which by index; the sandbox wants the device.
            wanted = {int(i) for i in ray.get_gpu_ids() if str(i).isdigit()}
            devices, why = gpu_devices()
            device = next((d for d in devices if d.index in wanted), None)
            if device is None:
                result = EvaluationResult("failed", [f"Ray gave this evaluation GPU {sorted(wanted)} on node "
                                                     f"{node_id}, which NVML does not see ({why})"],
                                          code=Reason.NO_SANDBOX.value)
                return result, b"", node_id
            limits = replace(limits, gpu_device=device)
        try:
            runner = pick_sandbox(settings, image=image_for(spec.image, settings))
        except SandboxUnavailable as exc:
            return EvaluationResult("failed", [f"no sandbox on node {node_id}: {exc}"]), b"", node_id
        try:
            result = asyncio.run(evaluate(
                spec, diff, eval_set="heldout", heldout_index=heldout_index, sandbox=runner, log_dir=logs,
                allow_unsandboxed=bool(settings["allow_unsandboxed"]),
                log_cap_bytes=int(settings["log_cap_bytes"]), limits=limits))
        finally:
            closer = getattr(runner, "close", None)
            if closer is not None:
                closer()
        for run in result.runs:  # the coordinator keeps the logs under its own data dir
            if run.log_path.startswith(str(logs)):
                run.log_path = os.path.relpath(run.log_path, logs)
        return result, _pack_logs(logs), node_id


class ClusterSlots:
    """The queue's SlotGate over a Ray cluster: admits as many evaluations as the live
    nodes have CPUs and GPUs for, so rows wait QUEUED here rather than RUNNING in Ray."""

    def __init__(self, store: Store, settings: dict[str, Any], ray):
        self.store, self.settings, self.ray = store, settings, ray
        self.needs: dict[str, Need] = {}
        self.cpus_held = 0.0
        self.gpus_held = 0

    async def need(self, bounty_id: str) -> Need | None:
        if bounty_id not in self.needs:
            bounty = await self.store.fetchone("SELECT source_dir FROM bounties WHERE id = ?", (bounty_id,))
            try:
                self.needs[bounty_id] = need_for(load_bounty(bounty["source_dir"]), self.settings)
            except Exception:  # no frozen copy, or an unreadable one: the evaluator reports it
                return None
        return self.needs[bounty_id]

    def num_cpus(self, need: Need) -> float:
        """What a task asks Ray for: its cores, or a whole node's for an exclusive bounty
        (the largest node's: Ray has no "whole machine" request)."""
        if need.exclusive:
            return max((n["Resources"].get("CPU", 0) for n in _alive_nodes(self.ray)), default=need.cores)
        return float(need.cores)

    async def admit(self, row: dict[str, Any]) -> Any:
        need = await self.need(row["bounty_id"]) or Need(1, 0)
        total = self.ray.cluster_resources()
        cpus = self.num_cpus(need)
        if need.gpu and total.get("GPU", 0) >= 1 and self.gpus_held + 1 > total.get("GPU", 0):
            return None  # only a GPU is missing: work of other bounties may go first
        if self.cpus_held and self.cpus_held + cpus > total.get("CPU", 0):
            return HOLD
        self.cpus_held += cpus
        self.gpus_held += int(need.gpu)
        return (need, cpus)

    def release(self, lease: Any) -> None:
        need, cpus = lease
        self.cpus_held -= cpus
        self.gpus_held -= int(need.gpu)


# Task failures that mean the machine went away, not that the evaluation failed.
_LOST = ("NodeDiedError", "WorkerCrashedError", "ObjectLostError", "OwnerDiedError", "ActorDiedError",
         "LocalRayletDiedError", "RaySystemError", "ObjectFetchTimedOutError")


def make_ray_row_evaluator(store: Store, cfg: Config, gate: ClusterSlots,
                           on_log: Callable[[int, str], None] | None = None):
    """``row -> EvaluationResult`` for the queue, judged by a Ray task on some node."""
    settings = cfg.section("evaluation")
    ray = gate.ray
    remote = ray.remote(judge_on_node)
    extra = dict(settings.get("ray_resources") or {})

    async def evaluate_row(row: dict[str, Any]) -> EvaluationResult:
        inputs = await load_row_inputs(store, row)
        if isinstance(inputs, EvaluationResult):
            return inputs
        spec, diff = inputs
        need, cpus = row["slot"]
        if need.gpu and ray.cluster_resources().get("GPU", 0) < 1:
            return EvaluationResult("failed", ["this bounty asks for a GPU (resources.gpu = true) and no node of "
                                               "the Ray cluster offers one"], code=Reason.NO_SANDBOX.value)
        say = (lambda line: on_log(row["id"], line)) if on_log else (lambda line: None)
        bundle = await asyncio.to_thread(pack_frozen, spec, row["heldout_set"] or 0)
        ref = remote.options(num_cpus=cpus, num_gpus=1 if need.gpu else 0, max_retries=0,
                             memory=need.memory_mb * 1024 * 1024 or None, resources=extra or None,
                             name=f"l402tui-eval-{row['id']}").remote(
            ray.put(bundle), diff, row["heldout_set"] or 0, dict(settings))
        say(f"ray: submitted to the cluster ({cpus:g} CPUs{', 1 GPU' if need.gpu else ''}, "
            f"{len(bundle)} bytes of frozen bounty)")
        try:
            result, logs, node_id = await ref
        except asyncio.CancelledError:
            ray.cancel(ref, force=True)  # the coordinator stops: end the run on its node too
            raise
        except Exception as exc:
            if type(exc).__name__ in _LOST:
                say(f"ray: lost the node running this evaluation ({type(exc).__name__}); re-queued")
                raise EvaluationLost(f"the Ray node running it went away ({type(exc).__name__})") from None
            raise
        log_dir = cfg.data_dir / "eval-logs" / str(row["id"]) / f"attempt-{row['attempts']}"
        await asyncio.to_thread(_keep_logs, logs, log_dir, result)
        say(f"ray: judged on node {node_id}")
        (log_dir / "ray-node.txt").write_text(node_id + "\n")
        return result

    return evaluate_row


def _keep_logs(logs: bytes, log_dir: Path, result: EvaluationResult) -> None:
    log_dir.mkdir(parents=True, exist_ok=True)
    if logs:
        with tarfile.open(fileobj=io.BytesIO(logs), mode="r:gz") as tar:
            tar.extractall(log_dir, filter="data")  # a node's tarball is still checked: paths stay inside
    for run in result.runs:
        if run.log_path and not os.path.isabs(run.log_path):
            run.log_path = str(log_dir / run.log_path)


async def run_ray_worker(store: Store, cfg: Config, *, stop: asyncio.Event | None = None, idle_exit: bool = False,
                         on_done: OnDone | None = None, on_log: Callable[[int, str], None] | None = None) -> int:
    """Recover, then evaluate queued work on the Ray cluster at ``evaluation.ray_address``
    until ``stop`` (or idle, with ``idle_exit``)."""
    settings = cfg.section("evaluation")
    ray = await asyncio.to_thread(connect, settings.get("ray_address", "auto"))
    gate = ClusterSlots(store, settings, ray)
    cap = int(settings.get("slots", 0) or 0)
    queue = EvaluationQueue(store, max_concurrent=cap if cap > 0 else MAX_IN_FLIGHT,
                            max_attempts=int(settings["max_attempts"]))
    requeued = await queue.recover()
    if requeued:
        log.warning("re-queued evaluations interrupted by a previous stop: %s", requeued)
    nodes = _alive_nodes(ray)
    log.info("evaluating on the Ray cluster: %d nodes, %g CPUs, %g GPUs", len(nodes),
             sum(n["Resources"].get("CPU", 0) for n in nodes), sum(n["Resources"].get("GPU", 0) for n in nodes))
    evaluate_row = make_ray_row_evaluator(store, cfg, gate, on_log)
    return await queue.run(evaluate_row, on_done=on_done, sandbox=f"ray:{settings['sandbox']}", stop=stop,
                           idle_exit=idle_exit, gate=gate)
