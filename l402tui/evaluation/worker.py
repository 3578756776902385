"""The evaluation worker: works the ``evaluations`` queue of a coordinator's database.

The coordinator inserts QUEUED rows (baseline, submission, stability) and reads
back DONE / FAILED rows with their medians; this worker does the evaluating in
between.  Run it in-process (``await run_worker(store, cfg, stop=...)``, e.g. as a
background task of the aiohttp app) or as its own process against the same
database::

    python -m l402tui.evaluation.worker [--db PATH] [--idle-exit]

It re-queues work a killed process left RUNNING before taking anything new, so a
``kill -9`` costs a re-run, never a lost or doubled verdict.

Several evaluations run at once, each in its own slot (slots.py): its own cores, its
memory and, for a GPU bounty, one whole GPU.  ``evaluation.slots`` caps how many
(0: as many as the cores allow), ``evaluation.reserved_cores`` keeps the first cores
for the coordinator and the TUI.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

from l402tui.bounty import load_bounty
from l402tui.config import Config, load_config
from l402tui.evaluation.cgroups import sweep_stale_cgroups
from l402tui.evaluation.harness import EvaluationResult, _limits, evaluate, sweep_stale_roots
from l402tui.evaluation.queue import HOLD, EvaluationQueue, OnDone, load_row_inputs
from l402tui.evaluation.reasons import Reason
from l402tui.evaluation.runners import image_for, pick_sandbox
from l402tui.evaluation.sandbox import RUN_GROUP, RunGroup, Sandbox, SandboxUnavailable
from l402tui.evaluation.slots import Machine, Need, Slot, SlotPool, need_for
from l402tui.store.db import Store
from l402tui.store.privacy import private_umask

log = logging.getLogger(__name__)

# How long a cancelled evaluation waits for its killed sandboxes to be reaped (docker kill
# plus removal take ~0.5 s); `serve` must be gone within 5 s of SIGTERM.
CANCEL_GRACE_S = 3.0


def make_row_evaluator(store: Store, cfg: Config, sandbox: Sandbox | None = None,
                       on_log: Callable[[int, str], None] | None = None):
    """``row -> EvaluationResult`` for the queue: loads the coordinator's frozen bounty
    copy and the submission's diff, and keeps the eval log under the data dir."""
    settings = cfg.section("evaluation")
    # One runner per image for the worker's life: a runner keeps a sandbox started ahead
    # for its next run (bwrap), which a runner made per evaluation would leave waiting.
    runners: dict[str, Sandbox] = {}

    def runner_for(image: str) -> Sandbox:
        if image not in runners:
            runners[image] = pick_sandbox(settings, image=image)
        return runners[image]

    def close() -> None:
        for runner in runners.values():
            closer = getattr(runner, "close", None)
            if closer is not None:
                closer()
        runners.clear()

    async def evaluate_row(row: dict[str, Any]) -> EvaluationResult:
        inputs = await load_row_inputs(store, row)
        if isinstance(inputs, EvaluationResult):
            return inputs
        spec, diff = inputs
        try:
            runner = sandbox or runner_for(image_for(spec.image, settings))
        except SandboxUnavailable as exc:
            return EvaluationResult("failed", [f"no sandbox: {exc}"])
        if not runner.isolated and not settings["allow_unsandboxed"] and await _sponsors(store, row["bounty_id"]):
            # A sponsor's run, tests and scorer are a stranger's code, the baseline's too:
            # never on the host (posting is refused without a sandbox; this holds if it went away).
            return EvaluationResult("failed", ["this bounty's sponsor is not the operator and this coordinator has "
                                               "no sandbox now (bwrap or docker): its code does not run unsandboxed"],
                                    sandbox=runner.kind, code=Reason.NO_SANDBOX.value)
        slot: Slot | None = row.get("slot")
        limits = None
        if slot is not None:
            if spec.gpu and slot.gpu is None:
                return EvaluationResult("failed", ["this bounty asks for a GPU (resources.gpu = true) and this "
                                                   "machine has none that NVML can see"], sandbox=runner.kind,
                                        code=Reason.NO_SANDBOX.value)
            limits = replace(_limits(spec), cpuset=slot.cores, gpu_device=slot.gpu)
        log_dir = cfg.data_dir / "eval-logs" / str(row["id"]) / f"attempt-{row['attempts']}"
        line_sink = (lambda line: on_log(row["id"], line)) if on_log else None
        if slot is not None and line_sink is not None:
            line_sink(f"slot: {slot.describe()}")
        group = RunGroup()
        token = RUN_GROUP.set(group)  # copied into the harness's threads with the context
        try:
            running = asyncio.ensure_future(evaluate(
                spec, diff, eval_set="heldout", heldout_index=row["heldout_set"] or 0, sandbox=runner,
                log=line_sink, log_dir=log_dir, allow_unsandboxed=bool(settings["allow_unsandboxed"]),
                log_cap_bytes=int(settings["log_cap_bytes"]), limits=limits))
        finally:
            RUN_GROUP.reset(token)
        try:
            return await asyncio.shield(running)
        except asyncio.CancelledError:
            # The harness works in a thread that cannot be cancelled: end this evaluation's
            # sandboxes (and any it starts from now on), then give the thread a moment to
            # see them die, so that no container outlives a stopped coordinator.
            group.cancel()
            await asyncio.wait({running}, timeout=CANCEL_GRACE_S)
            if running.done() and not running.cancelled():
                running.exception()  # its result is discarded; do not warn that it was never read
            raise

    evaluate_row.close = close  # type: ignore[attr-defined]
    return evaluate_row


async def _sponsors(store: Store, bounty_id: str) -> bool:
    """Whether a sponsor who is not the operator posted this bounty."""
    return await store.scalar("SELECT 1 FROM sponsor_bounties WHERE bounty_id = ?", (bounty_id,)) is not None


class MachineSlots:
    """The queue's SlotGate over this machine's SlotPool: a row's need comes from its
    bounty's frozen spec (read once per bounty)."""

    def __init__(self, store: Store, settings: dict[str, Any], pool: SlotPool):
        self.store, self.settings, self.pool = store, settings, pool
        self._needs: dict[str, Any] = {}

    async def admit(self, row: dict[str, Any]) -> Any:
        need = self._needs.get(row["bounty_id"])
        if need is None:
            bounty = await self.store.fetchone("SELECT source_dir FROM bounties WHERE id = ?", (row["bounty_id"],))
            try:
                need = need_for(load_bounty(bounty["source_dir"]), self.settings)
            except Exception:  # no frozen copy, or an unreadable one: the evaluator reports it
                return self.pool.take(Need(1, 0)) or HOLD
            self._needs[row["bounty_id"]] = need
        slot = self.pool.take(need)
        if slot is not None:
            return slot
        return None if self.pool.why_not(need) == "gpu" else HOLD

    def release(self, lease: Any) -> None:
        if isinstance(lease, Slot):
            self.pool.give_back(lease)


def machine_slots(store: Store, settings: dict[str, Any], machine: Machine | None = None) -> MachineSlots:
    """The slots of this machine per ``evaluation.slots`` / ``reserved_cores`` (and the
    legacy ``max_concurrent`` when it was raised above 1)."""
    cap = int(settings.get("slots", 0) or 0)
    legacy = int(settings.get("max_concurrent", 1) or 1)
    if cap <= 0 and legacy > 1:
        cap = legacy
    return MachineSlots(store, settings, SlotPool(machine or Machine.detect(settings), cap))


async def run_worker(store: Store, cfg: Config, *, stop: asyncio.Event | None = None, idle_exit: bool = False,
                     sandbox: Sandbox | None = None, on_done: OnDone | None = None,
                     on_log: Callable[[int, str], None] | None = None,
                     machine: Machine | None = None) -> int:
    """Recover, then evaluate queued work until ``stop`` (or idle, with ``idle_exit``),
    as many evaluations at once as this machine's slots allow (``machine``: a given one),
    or on a Ray cluster's nodes with ``evaluation.executor = "ray"`` (ray_executor.py)."""
    settings = cfg.section("evaluation")
    executor = settings.get("executor", "local")
    if executor == "ray":
        from l402tui.evaluation.ray_executor import run_ray_worker  # Ray only when the operator chose it

        return await run_ray_worker(store, cfg, stop=stop, idle_exit=idle_exit, on_done=on_done, on_log=on_log)
    if executor != "local":
        raise ValueError(f"evaluation.executor = {executor!r} is not known; use \"local\" (this machine's "
                         "slots) or \"ray\" (a Ray cluster, pip install 'l402tui[ray]')")
    gate = machine_slots(store, settings, machine)
    queue = EvaluationQueue(store, max_concurrent=gate.pool.capacity,
                            max_attempts=int(settings["max_attempts"]))
    sweep_stale_roots()
    sweep_stale_cgroups()
    requeued = await queue.recover()
    if requeued:
        log.warning("re-queued evaluations interrupted by a previous stop: %s", requeued)
    kind = sandbox.kind if sandbox else settings["sandbox"]
    log.info("evaluation slots: %d (cores %s, GPUs %d)", gate.pool.capacity,
             ",".join(map(str, gate.pool.machine.cores)), len(gate.pool.machine.gpus))
    evaluate_row = make_row_evaluator(store, cfg, sandbox, on_log)
    try:
        return await queue.run(evaluate_row, on_done=on_done, sandbox=kind, stop=stop, idle_exit=idle_exit,
                               gate=gate)
    finally:
        evaluate_row.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m l402tui.evaluation.worker", description=__doc__.split("\n")[0])
    parser.add_argument("--db", type=Path, help="database file (default: the configured data dir's)")
    parser.add_argument("--idle-exit", action="store_true", help="exit once nothing is queued or running")
    args = parser.parse_args(argv)
    # Run by hand or by a service manager, not through the CLI (which sets it): the eval
    # logs this writes under the data dir can hold held-out outputs, so they stay private.
    private_umask()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    cfg = load_config()

    async def go() -> int:
        stop = asyncio.Event()  # SIGTERM/SIGINT: kill the running sandboxes, re-queue their work, exit
        for sig in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        store = await Store.open(args.db or cfg.db_path)
        try:
            done = await run_worker(store, cfg, stop=stop, idle_exit=args.idle_exit,
                                    on_log=lambda eid, line: print(f"[eval {eid}] {line}", flush=True))
        finally:
            await store.close()
        print(json.dumps({"completed": done}), flush=True)
        return 0

    return asyncio.run(go())


if __name__ == "__main__":
    raise SystemExit(main())
