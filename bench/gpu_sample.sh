#!/usr/bin/env bash
# The GPU path of sample_bounties/gpumlp, measured by the harness on a GPU slot; prints figures.
# Run on a machine with an NVIDIA GPU, from the repository root:
#
#     bash bench/gpu_sample.sh            # PYTHON=... to pick the interpreter (default: .venv or python3)
#
# Needs: numpy and nvidia-ml-py for $PYTHON (l402tui is imported from this checkout), and for the
# run phase's `python3` numpy plus CuPy or PyTorch with CUDA (without either it trains on the CPU and
# says "backend numpy").  The run uses the local sandbox (the sponsor's own code and an honest diff).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
echo "== machine"
nvidia-smi -L 2>/dev/null || echo "nvidia-smi: not available"
python3 - <<'PY' || true
import importlib
for name in ("numpy", "cupy", "torch"):
    try:
        m = importlib.import_module(name)
        extra = ""
        if name == "torch":
            extra = f", cuda available: {m.cuda.is_available()}"
        print(f"run phase python3: {name} {getattr(m, '__version__', '?')}{extra}")
    except Exception as exc:
        print(f"run phase python3: {name} not usable ({exc.__class__.__name__})")
PY
exec "$PYTHON" - <<'PY'
import asyncio, dataclasses, difflib, json, statistics, sys, time
from pathlib import Path

from l402tui.bounty import load_bounty
from l402tui.evaluation.harness import _limits, evaluate
from l402tui.evaluation.sandbox import LocalSandbox
from l402tui.evaluation.slots import Machine, SlotPool, gpu_refusal, need_for
from l402tui.telemetry.gpu import GpuSampler

spec = load_bounty("sample_bounties/gpumlp")
snap = GpuSampler().read()
print("NVML:", snap.unavailable_reason or ", ".join(f"{g.index}: {g.name} ({g.uuid}, /dev/nvidia{g.minor})"
                                                    for g in snap.gpus))
print("create would refuse:" , gpu_refusal(spec) or "no (a GPU is there)")
machine = Machine.detect({})
slot = SlotPool(machine).take(need_for(spec, {}))
print("slot:", slot.describe())
limits = dataclasses.replace(_limits(spec), cpuset=slot.cores, gpu_device=slot.gpu)

old = (spec.target_path / "model.py").read_text()
new = old
for a, b in (("HIDDEN = 32 ", "HIDDEN = 128 "), ("LEARNING_RATE = 0.02 ", "LEARNING_RATE = 0.1 "),
             ("BATCH_SIZE = 64 ", "BATCH_SIZE = 128 ")):
    new = new.replace(a, b)
tuned = "diff --git a/model.py b/model.py\n" + "".join(difflib.unified_diff(
    old.splitlines(True), new.splitlines(True), "a/model.py", "b/model.py"))

failed = 0
KEYS = ("accuracy", "wall_s", "cpu_s", "peak_rss_mb", "gpu_s", "gpu_energy_j", "gpu_peak_mem_mb")
for path, env in (("GPU path", {}), ("CPU path", {"L402_BACKEND": "numpy"})):
    for label, diff in (("baseline", None), ("tuned", tuned)):
        lines = []
        started = time.monotonic()
        result = asyncio.run(evaluate(spec, diff, sandbox=LocalSandbox(), repeats=3, allow_unsandboxed=True,
                                      limits=limits, extra_env=env, log=lines.append))
        backend = next((l.split("] ", 1)[-1] for l in lines if "backend " in l), "?")
        figures = "  ".join(f"{k} {result.medians[k]:.4g}" if k in result.medians else f"{k} N/A" for k in KEYS)
        print(f"{path:8} {label:8} {result.status:6} {result.code or '':24} [{backend}] {figures}  "
              f"(3 repeats + tests in {time.monotonic() - started:.1f} s)")
        if not result.ok:
            print("   ", result.reasons)
            failed += 1
sys.exit(f"{failed} evaluation(s) did not pass" if failed else 0)
PY
