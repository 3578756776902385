"""A bwrap started ahead of its run (bwrap_spare.py) behaves exactly like one started
for it: same measurements, limits, exit codes and logs; never leaks a process."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from l402tui.evaluation.sandbox import Limits
from runners_fixture import make_runner
from sandbox_probes import FORK_BOMB, MEMORY_HOG, SMALL, run_probe

@pytest.fixture
def bwrap():
    sandbox = make_runner("bwrap")
    yield sandbox
    sandbox.close()


def run(sandbox, tmp_path: Path, name: str, code: str, limits: Limits = SMALL):
    return run_probe(sandbox, tmp_path / name, code, limits)


def wait_for_spare(sandbox, limits: Limits = SMALL) -> None:
    end = time.monotonic() + 10
    while not sandbox.spare_ready(limits) and time.monotonic() < end:
        time.sleep(0.01)


def from_spare(sandbox, tmp_path, name, code, limits=SMALL):
    """Run once to make a spare for ``limits``, wait for it, run ``code`` from it."""
    run(sandbox, tmp_path, name + "-first", "pass\n", limits)
    wait_for_spare(sandbox, limits)
    before = sandbox.spare_runs
    result = run(sandbox, tmp_path, name, code, limits)
    assert sandbox.spare_runs == before + 1, "the run did not start from the spare"
    return result


def test_a_spare_run_measures_and_writes_like_a_direct_one(bwrap, sandbox_tmp):
    outcome, lines, layout = from_spare(bwrap, sandbox_tmp, "measure", """
        import os, sys
        data = open(sys.argv[1] + "/data.txt").read()
        open(sys.argv[2] + "/out.txt", "w").write(data.upper())
        block = bytearray(40 * 1024 * 1024)
        for i in range(0, len(block), 4096):
            block[i] = 1
        print("finished as", os.getuid(), "with", sys.argv[1:])
        raise SystemExit(7)
    """)
    assert outcome.exit_code == 7 and not outcome.ok
    assert (layout.artifacts / "out.txt").read_text() == "INPUT-DATA"
    assert lines == ["finished as 65534 with ['/inputs', '/artifacts']"]
    assert outcome.peak_rss_mb >= 40 and outcome.cpu_s > 0


def test_a_spare_run_keeps_every_limit(bwrap, sandbox_tmp):
    quick = Limits(memory_mb=128, cpus=1, time_limit_s=1.0, pids=64)
    outcome, _, _ = from_spare(bwrap, sandbox_tmp, "endless", "while True: pass\n", quick)
    assert outcome.timed_out
    outcome, lines, _ = from_spare(bwrap, sandbox_tmp, "forks", FORK_BOMB)
    assert any(line.startswith("fork refused after") for line in lines), lines
    outcome, _, _ = from_spare(bwrap, sandbox_tmp, "memory", MEMORY_HOG)
    assert outcome.exit_code != 0


def test_other_limits_start_directly_keep_each_spare_and_close_ends_them(bwrap, sandbox_tmp):
    # Two slots (other cores: other limits) each keep their own spare; a run never uses
    # a spare made for other limits.
    run(bwrap, sandbox_tmp, "a", "pass\n")
    wait_for_spare(bwrap)
    spare_pid = bwrap._spares._spares[(SMALL, os.geteuid())].proc.pid
    other = Limits(memory_mb=256, cpus=1, time_limit_s=10, pids=64)
    outcome, lines, _ = run(bwrap, sandbox_tmp, "b", "print('ran')\n", other)
    assert outcome.ok and lines == ["ran"] and bwrap.spare_runs == 0
    wait_for_spare(bwrap, other)
    assert bwrap.spare_ready(SMALL)  # the first slot's spare is still there, unused
    procs = [s.proc for s in bwrap._spares._spares.values()]
    assert spare_pid in [p.pid for p in procs] and len(procs) == 2
    bwrap.close()
    assert all(p.poll() is not None for p in procs)


def test_an_unused_spare_whose_parent_is_gone_runs_nothing(bwrap, sandbox_tmp):
    run(bwrap, sandbox_tmp, "a", "pass\n")
    wait_for_spare(bwrap)
    spare = bwrap._spares.take((SMALL, os.geteuid()))
    # What the kernel does when the coordinator dies: both pipes' write ends close.
    os.close(spare.args_w)
    os.close(spare.script_w)
    spare.args_w = spare.script_w = -1
    assert spare.proc.wait(timeout=10) != 0  # no options: an empty root, no shell, no script
    said = os.read(spare.log_r, 4096).decode()
    assert "/bin/sh" in said, said
    spare.discard()
