"""Slots: several evaluations at once, each on its own cores (and GPU), fairly ordered."""

from __future__ import annotations

import difflib
import json
import os
import time
from dataclasses import replace
from pathlib import Path

import pytest

from l402tui.bounty import load_bounty
from l402tui.config import load_config
from l402tui.evaluation.queue import EvaluationQueue
from l402tui.evaluation.slots import Machine, Need, SlotPool, gpu_refusal, need_for
from l402tui.evaluation.worker import run_worker
from l402tui.store.db import Store
from l402tui.telemetry.gpu import GpuDevice
from runners_fixture import make_runner
from sandbox_probes import SMALL, run_probe
from tinybounty import make_sums

GPU0, GPU1 = GpuDevice(0, "A", "GPU-aaaa", 0), GpuDevice(1, "B", "GPU-bbbb", 1)


def _resources(root: Path, line: str) -> Path:
    toml = root / "bounty.toml"
    toml.write_text(toml.read_text().replace("[resources]\n", f"[resources]\n{line}\n", 1))
    return root


def test_slots_are_disjoint_and_given_back():
    pool = SlotPool(Machine((0, 1, 2, 3), (GPU0,), memory_mb=10_000))
    a, b = pool.take(Need(2, 1000)), pool.take(Need(1, 1000, gpu=True))
    assert a.cores == (0, 1) and b.cores == (2,) and b.gpu == GPU0 and a.gpu is None
    assert pool.take(Need(1, 1000, gpu=True)) is None and pool.why_not(Need(1, 1000, gpu=True)) == "gpu"
    c = pool.take(Need(1, 1000))
    assert c.cores == (3,)
    assert pool.why_not(Need(1, 1000)) == "cores"
    pool.give_back(b)
    assert pool.take(Need(1, 1000, gpu=True)).gpu == GPU0
    assert a.kind == "2 cores" and "1 GPU (A)" in b.kind


def test_an_exclusive_evaluation_holds_the_whole_machine_and_waits_for_it():
    pool = SlotPool(Machine((0, 1, 2), memory_mb=10_000))
    small = pool.take(Need(1, 100))
    assert pool.why_not(Need(1, 100, exclusive=True)) == "cores"  # waits, and the gate holds the queue
    pool.give_back(small)
    whole = pool.take(Need(1, 100, exclusive=True))
    assert whole.cores == (0, 1, 2) and whole.exclusive
    assert pool.take(Need(1, 100)) is None


def test_memory_and_the_slot_cap_limit_how_many_run():
    pool = SlotPool(Machine((0, 1, 2, 3), memory_mb=1000), max_slots=3)
    assert pool.capacity == 3
    assert pool.take(Need(1, 600)) and pool.take(Need(1, 600)) is None  # 1200 MB > 1000 MB
    big_alone = SlotPool(Machine((0,), memory_mb=100))
    assert big_alone.take(Need(4, 5000)).cores == (0,)  # larger than the machine: runs alone, on all of it


def test_timing_bounties_are_exclusive_by_default_and_may_say_otherwise(tmp_path):
    timing = '[[metrics]]\nname = "cpu_s"\ndirection = "minimize"\nsource = "harness"\n'
    spec = load_bounty(make_sums(tmp_path / "t", metrics=timing))
    assert need_for(spec, {}) == Need(1, 256, False, True)
    assert need_for(spec, {"exclusive_timing": False}).exclusive is False
    shared = load_bounty(_resources(make_sums(tmp_path / "s", metrics=timing), "exclusive = false"))
    assert need_for(shared, {}).exclusive is False
    assert need_for(load_bounty(make_sums(tmp_path / "a")), {}).exclusive is False


def test_gpu_metrics_need_a_gpu_bounty(tmp_path):
    from l402tui.bounty.spec import BountyInvalid

    energy = '[[metrics]]\nname = "gpu_energy_j"\ndirection = "minimize"\nsource = "harness"\n'
    with pytest.raises(BountyInvalid, match="measured on the run's GPU; set resources.gpu = true"):
        load_bounty(make_sums(tmp_path / "e", metrics=energy))  # no gpu = true


def test_a_gpu_bounty_without_a_gpu_is_refused_with_the_reason(tmp_path):
    spec = load_bounty(_resources(make_sums(tmp_path / "g"), "gpu = true"))
    message = gpu_refusal(spec, ((), "no GPU (no NVIDIA driver found)"))
    assert "asks for a GPU (resources.gpu = true)" in message and "no NVIDIA driver found" in message
    assert gpu_refusal(spec, ((GPU0,), None)) is None
    assert gpu_refusal(load_bounty(make_sums(tmp_path / "c")), ((), "none")) is None


async def test_create_refuses_a_gpu_bounty_on_a_machine_without_one(tmp_path):
    from l402tui.coordinator.errors import Invalid
    from l402tui.coordinator.service import Coordinator
    from l402tui.lightning.sim import SimNetwork
    from l402tui.telemetry.gpu import gpu_devices
    from tests.coordinator.conftest import make_bounty

    if gpu_devices()[0]:
        pytest.skip("this machine has a GPU")
    folder = make_bounty(tmp_path / "sponsor")
    toml = folder / "bounty.toml"
    toml.write_text(toml.read_text() + "\n[resources]\ngpu = true\n")
    cfg = load_config(tmp_path / "none.toml", env={}).with_overrides({"paths.data_dir": str(tmp_path / "data")})
    net = SimNetwork.from_config(cfg)
    await net.create_node("coordinator", 0, exist_ok=True)
    store = await Store.open(cfg.db_path)
    coord = Coordinator(cfg, store, net.node("coordinator"))
    try:
        with pytest.raises(Invalid, match=r"asks for a GPU .* has none \(no GPU") as info:
            await coord.create_bounty(folder, self_funded=True)
        assert info.value.code == "no_gpu"
        assert await store.scalar("SELECT COUNT(*) FROM bounties") == 0
    finally:
        await coord.stop()
        await store.close()
        await net.close()


# -- the queue's order ---------------------------------------------------------------------

async def _bounty(store: Store, bounty_id: str, source: Path) -> None:
    now = time.time()
    async with store.transaction() as txn:
        await txn.insert("bounties", {"id": bounty_id, "name": bounty_id, "status": "OPEN", "spec_json": "{}",
                                      "source_dir": str(source), "pool_msat": 1, "created_at": now,
                                      "updated_at": now})


async def test_round_robin_by_bounty_then_fifo_and_baseline_first(tmp_path):
    store = await Store.open(tmp_path / "db.sqlite")
    queue = EvaluationQueue(store)
    burst = [await queue.enqueue("A", kind="baseline")] + [await queue.enqueue("A", kind="stability")
                                                          for _ in range(4)]
    other = [await queue.enqueue("B", kind="stability") for _ in range(2)]
    order = []
    while (row := await queue.claim()) is not None:
        order.append(row["id"])
        if row["kind"] == "baseline":  # A's others wait for it; B goes meanwhile
            assert await queue.claim() is not None and (await queue.claim()) is not None
            order += other
            assert await queue.claim() is None
            await queue.complete(row, _ok())
    assert order == [burst[0], *other, *burst[1:]]
    await store.close()


def _ok():
    from l402tui.evaluation.harness import EvaluationResult

    return EvaluationResult("ok", [], {"accuracy": 1.0}, {"accuracy": 0.0}, [], sandbox="local")


async def test_a_burst_does_not_starve_another_bounty(tmp_path):
    store = await Store.open(tmp_path / "db.sqlite")
    queue = EvaluationQueue(store)
    for _ in range(6):
        await queue.enqueue("A", kind="stability")
    late = await queue.enqueue("B", kind="stability")
    first = await queue.claim()
    second = await queue.claim()
    assert first["bounty_id"] == "A" and second["id"] == late  # B is second, not seventh
    await store.close()


# -- two slots, two submissions, at once -----------------------------------------------------

def _cpus_diff(bounty: Path) -> str:
    """The honest fix, whose run prints the cores it may run on (read inside the sandbox)
    and stays a second, so two evaluations overlap."""
    old = (bounty / "target" / "sumlib.py").read_text()
    probe = ("import time\nfor _l in open('/proc/self/status'):\n    if _l.startswith('Cpus_allowed_list'):\n"
             "        print('cpus=' + _l.split()[1], flush=True)\ntime.sleep(1.0)\n")
    new = probe + old.replace("SKIP_NEGATIVE = True", "SKIP_NEGATIVE = False")
    body = "".join(difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True),
                                        "a/sumlib.py", "b/sumlib.py"))
    return "diff --git a/sumlib.py b/sumlib.py\n" + body


@pytest.mark.parametrize("kind", ["local", pytest.param("bwrap", marks=pytest.mark.bwrap),
                                  pytest.param("docker", marks=pytest.mark.docker)])
async def test_two_slots_judge_two_submissions_at_once_on_disjoint_cores(kind, tmp_path):
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs two cores")
    sandbox = make_runner(kind)
    bounty = make_sums(tmp_path / "sums")
    store = await Store.open(tmp_path / "db.sqlite")
    await _bounty(store, "b1", bounty)
    diff = _cpus_diff(bounty)
    queue = EvaluationQueue(store)
    ids = []
    for sid in ("s1", "s2"):
        now = time.time()
        async with store.transaction() as txn:
            await txn.insert("submissions", {"id": sid, "bounty_id": "b1", "status": "QUEUED", "diff": diff,
                                             "created_at": now, "updated_at": now})
        ids.append(await queue.enqueue("b1", kind="submission", submission_id=sid))
    cfg = load_config(tmp_path / "none.toml", env={}).with_overrides(
        {"paths.data_dir": str(tmp_path / "data"), "evaluation.allow_unsandboxed": True})
    lines: dict[int, list[str]] = {i: [] for i in ids}
    verdicts: list[str] = []

    async def on_done(txn, row, result):
        verdicts.append(row["submission_id"])

    machine = Machine(tuple(sorted(os.sched_getaffinity(0)))[:2])
    done = await run_worker(store, cfg, idle_exit=True, sandbox=sandbox, on_done=on_done, machine=machine,
                            on_log=lambda eid, line: lines[eid].append(line))
    assert done == 2 and sorted(verdicts) == ["s1", "s2"]
    rows = await store.fetchall("SELECT * FROM evaluations ORDER BY id")
    assert [r["status"] for r in rows] == ["DONE", "DONE"], [r["error"] for r in rows]
    assert all(json.loads(r["metrics_json"])["accuracy"] == 1.0 for r in rows)
    seen = []
    for eid in ids:
        cpus = {line.split("cpus=", 1)[1] for line in lines[eid] if "cpus=" in line}
        assert len(cpus) == 1, lines[eid]  # every repeat on the same single core
        seen.append(cpus.pop())
    assert sorted(seen) == sorted(str(c) for c in machine.cores)  # disjoint: one core each
    a, b = rows
    assert a["started_at"] < b["finished_at"] and b["started_at"] < a["finished_at"]  # at the same time
    await store.close()


@pytest.mark.parametrize("kind", ["local", pytest.param("bwrap", marks=pytest.mark.bwrap),
                                  pytest.param("docker", marks=pytest.mark.docker)])
def test_a_bounty_without_a_gpu_sees_none_and_a_slot_sees_only_its_own(kind, sandbox_tmp):
    # On a GPU rig the local runner shows the host's /dev: without this a CPU bounty's run
    # (or the gpumlp sample with gpu = false) trained on the GPU and was measured as such.
    sandbox = make_runner(kind)
    probe = "import os\nprint('cuda=[%s]' % os.environ.get('CUDA_VISIBLE_DEVICES', 'unset'))\n"
    outcome, lines, _ = run_probe(sandbox, sandbox_tmp / "cpu", probe, replace(SMALL, gpu=False))
    assert outcome.exit_code == 0 and "cuda=[]" in lines, lines
    if kind == "local":  # the others bind /dev/nvidiaN, which a machine without a GPU lacks
        outcome, lines, _ = run_probe(sandbox, sandbox_tmp / "gpu", probe, replace(SMALL, gpu=True, gpu_device=GPU1))
        assert outcome.exit_code == 0 and "cuda=[GPU-bbbb]" in lines, lines
