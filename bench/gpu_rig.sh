#!/usr/bin/env bash
# Every check that needs an NVIDIA GPU, in one go, on a rig with one (figures for BENCHMARKS.md):
#
#   1. the tests that read a real GPU (NVML telemetry, GPU metrics, slots);
#   2. bench/gpu_sample.sh: the GPU sample judged on its GPU path and its CPU path
#      (accuracy, GPU-seconds, energy, peak GPU memory per evaluation);
#   3. bench/eval_throughput.py on every core of the rig (gpumlp on its CPU path, to measure
#      core scaling and CPU-second noise with N slots busy);
#   4. bench/eval_throughput.py --only gpumlp on the GPU path (one GPU per evaluation).
#
#     bash bench/gpu_rig.sh [LOGDIR]        # PYTHON=... SANDBOX=bwrap|local|docker COPIES=8
#
# The run phase of an evaluation runs `python3` from /usr/local/bin:/usr/bin:/bin (the sandbox's
# PATH); it needs numpy, and CuPy or PyTorch with CUDA for the GPU path.  Each step's output is
# kept in LOGDIR (default /tmp/l402tui-gpu-rig); the exit status is non-zero if any step failed.
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
SANDBOX=${SANDBOX:-local}
COPIES=${COPIES:-8}
LOG=${1:-/tmp/l402tui-gpu-rig}
mkdir -p "$LOG"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

failed=()
step() {
  local name=$1 started=$SECONDS status
  shift
  echo "== $name: $*"
  "$@" 2>&1 | tee "$LOG/$name.log"
  status=${PIPESTATUS[0]}
  echo "== $name: exit $status after $((SECONDS - started)) s"
  [ "$status" -eq 0 ] || failed+=("$name")
}

echo "== rig: $(nproc) cores, $(nvidia-smi -L 2>/dev/null | head -n 4 | tr '\n' ';' || echo 'no nvidia-smi')"
echo "== run phase python3: $(env -i PATH=/usr/local/bin:/usr/bin:/bin sh -c 'command -v python3; python3 -c "import numpy; print(\"numpy\", numpy.__version__)"' 2>&1 | tail -n 2 | tr '\n' ' ')"
step tests "$PYTHON" -m pytest -q -p no:cacheprovider -rs tests/tui/test_telemetry.py \
  tests/evaluation/test_gpu_metrics.py tests/evaluation/test_slots.py
step gpu_sample env PYTHON="$PYTHON" bash bench/gpu_sample.sh
step throughput_cores "$PYTHON" bench/eval_throughput.py --sandbox "$SANDBOX" --copies "$COPIES" --cpu-path
step throughput_gpu "$PYTHON" bench/eval_throughput.py --sandbox "$SANDBOX" --copies 2 --only gpumlp
if [ ${#failed[@]} -gt 0 ]; then
  echo "== failed: ${failed[*]}"
  exit 1
fi
echo "== all steps passed"
