"""Disk limits, the coarse failure class, and CPU time of every process of a run,
for each runner (and, for the disk, both ways of enforcing it: a sized tmpfs as root,
the watcher otherwise)."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from dataclasses import replace

import pytest

from l402tui.evaluation.run_disk import disk_mode
from l402tui.evaluation.sandbox import Limits, LocalSandbox
from runners_fixture import make_runner
from sandbox_probes import MEMORY_HOG, run_probe

DISK = Limits(memory_mb=512, cpus=1, time_limit_s=20, pids=64, disk_mb=64)
MB = 1024 * 1024
# What the host's disk may lose beyond the limit: the watcher's overshoot between two
# measurements, plus other processes writing to the same disk meanwhile.
SLACK = 64 * MB

# Tries to write 3 GiB; a refused write ends it with exit 0, as a run hiding the failure would.
WRITER = """
    import os, sys, tempfile
    where = {{"work": ".", "artifacts": sys.argv[2], "tmp": tempfile.gettempdir()}}["{where}"]
    chunk = b"x" * {chunk}
    try:
        for i in range(3 * 1024 * 1024 * 1024 // len(chunk)):
            if {many}:
                with open(os.path.join(where, f"f{{i}}"), "wb") as fh:
                    fh.write(chunk)
            else:
                with open(os.path.join(where, "big"), "ab") as fh:
                    fh.write(chunk)
    except OSError as exc:
        print("refused", exc.errno)
    print("wrote all")
"""
PATTERNS = [("artifacts", False), ("work", True), ("tmp", False), ("tmp", True), ("artifacts", True)]


class FreeSpaceSampler:
    """The least free space seen on the temp dir's filesystem while it runs."""

    def __init__(self) -> None:
        self.path = tempfile.gettempdir()
        self.start = shutil.disk_usage(self.path).free
        self.least = self.start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.least = min(self.least, shutil.disk_usage(self.path).free)
            self._stop.wait(0.002)

    def __enter__(self) -> "FreeSpaceSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def drop(self) -> int:
        return self.start - self.least


def runner(kind: str, mode: str):
    if mode == "tmpfs" and disk_mode() != "tmpfs":
        pytest.skip("mounting a tmpfs needs root")
    sandbox = make_runner(kind)
    sandbox.disk_mode = mode
    return sandbox


@pytest.mark.parametrize("mode", ["tmpfs", "watch"])
@pytest.mark.parametrize("kind", ["local", pytest.param("bwrap", marks=pytest.mark.bwrap),
                                  pytest.param("docker", marks=pytest.mark.docker)])
def test_a_3_gib_writer_is_stopped_at_the_disk_limit(kind, mode, sandbox_tmp):
    sandbox = runner(kind, mode)
    for i, (where, many) in enumerate(PATTERNS):
        code = WRITER.format(where=where, many=many, chunk=64 * 1024 if many else MB)
        with FreeSpaceSampler() as free:
            outcome, lines, layout = run_probe(sandbox, sandbox_tmp / f"{i}", code, DISK)
        what = f"{kind}/{mode} writing to {where} ({'many files' if many else 'one file'})"
        assert outcome.failure_code == "disk_limit", (what, outcome, lines)
        assert not outcome.ok and "disk limit" in outcome.describe_failure()
        assert free.drop <= DISK.disk_mb * MB + SLACK, (what, free.drop // MB)
        assert list(layout.artifacts.iterdir()) == [], what  # nothing of it is read back
    assert f"tmpfs l402tui-disk-{os.getpid()} " not in open("/proc/self/mountinfo").read()  # no mount left


@pytest.mark.parametrize("mode", ["tmpfs", "watch"])
def test_a_run_within_the_limit_keeps_its_outputs(mode, sandbox_tmp):
    sandbox = runner("local", mode)
    outcome, _, layout = run_probe(sandbox, sandbox_tmp, """
        import os, sys, tempfile
        os.makedirs(sys.argv[2] + "/sub")
        open(sys.argv[2] + "/sub/out.bin", "wb").write(b"y" * 20_000_000)
        open(tempfile.gettempdir() + "/scratch", "wb").write(b"z" * 20_000_000)
        os.symlink("/etc/passwd", sys.argv[2] + "/link")
    """, DISK)
    assert outcome.ok and outcome.failure_code is None, outcome
    assert (layout.artifacts / "sub" / "out.bin").stat().st_size == 20_000_000
    # Kept as what it is, so that the harness refuses it (never copied through).
    assert (layout.artifacts / "link").is_symlink()


@pytest.mark.parametrize("mode", ["tmpfs", "watch"])
def test_hard_links_that_would_multiply_on_copy_count_in_full(mode, sandbox_tmp):
    sandbox = runner("local", mode)
    outcome, _, layout = run_probe(sandbox, sandbox_tmp, """
        import os, sys
        open(sys.argv[2] + "/one", "wb").write(b"y" * 10_000_000)
        for i in range(20):  # 200 MB when copied, 10 MB on disk
            os.link(sys.argv[2] + "/one", sys.argv[2] + f"/link{i}")
    """, DISK)
    assert outcome.failure_code == "disk_limit", outcome
    assert list(layout.artifacts.iterdir()) == []


def test_failure_codes(any_runner, sandbox_tmp):
    quick = replace(DISK, time_limit_s=1.0)
    assert run_probe(any_runner, sandbox_tmp / "ok", "pass\n", quick)[0].failure_code is None
    assert run_probe(any_runner, sandbox_tmp / "t", "while True: pass\n", quick)[0].failure_code == "time_limit"
    assert run_probe(any_runner, sandbox_tmp / "c", "raise SystemExit(3)\n", quick)[0].failure_code == "crashed"
    killed = run_probe(any_runner, sandbox_tmp / "k", "import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n",
                       quick)[0]
    assert killed.failure_code == "crashed", killed


def test_memory_limit_code(any_runner, sandbox_tmp):
    if isinstance(any_runner, LocalSandbox) and any_runner.accounting != "cgroup":
        pytest.skip("the local runner without a cgroup limits address space only (a MemoryError is a crash)")
    outcome, _, _ = run_probe(any_runner, sandbox_tmp, MEMORY_HOG, replace(DISK, memory_mb=128))
    assert outcome.failure_code == "memory_limit", outcome


# The main process starts a grandchild in a new session, orphans it, and waits for
# it to finish a second of CPU work: its own rusage shows almost nothing.
ORPHAN_BURNER = """
    import os, sys, time
    done = sys.argv[2] + "/burned"
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            end = time.process_time() + 1.0
            while time.process_time() < end:
                pass
            open(done, "w").write(str(os.getpid()))
            {after}
            os._exit(0)
        os._exit(0)
    os.wait()
    while not os.path.exists(done):
        time.sleep(0.02)
    time.sleep(0.1)
    print("main cpu", time.process_time())
"""


def test_cpu_of_an_orphaned_grandchild_is_counted(any_runner, sandbox_tmp):
    outcome, lines, _ = run_probe(any_runner, sandbox_tmp, ORPHAN_BURNER.format(after="pass"), DISK)
    assert outcome.ok, (outcome, lines)
    # Counted, or no figure at all (a runner that cannot count every process says so).
    assert outcome.cpu_s is None or outcome.cpu_s >= 0.9, outcome
    if isinstance(any_runner, LocalSandbox):
        assert outcome.cpu_s is not None


@pytest.mark.parametrize("accounting", ["cgroup", "reaper"])
def test_local_counts_and_ends_every_process(accounting, sandbox_tmp):
    if accounting == "cgroup" and LocalSandbox().accounting != "cgroup":
        pytest.skip("cgroups need root")
    sandbox = LocalSandbox(accounting)
    outcome, _, layout = run_probe(sandbox, sandbox_tmp / "count", ORPHAN_BURNER.format(after="pass"), DISK)
    assert outcome.ok and outcome.cpu_s >= 0.9, outcome
    # An orphan that lives on after the main process is ended with the run.
    outcome, _, layout = run_probe(sandbox, sandbox_tmp / "linger", ORPHAN_BURNER.format(after="time.sleep(600)"),
                                   DISK)
    assert outcome.ok, outcome
    pid = int((layout.artifacts / "burned").read_text())
    time.sleep(0.2)
    assert not running(pid)


def running(pid: int) -> bool:
    """Alive and not a zombie (an orphan killed as root may wait for init to reap it)."""
    try:
        stat = open(f"/proc/{pid}/stat", "rb").read()
    except FileNotFoundError:
        return False
    return stat[stat.rfind(b")") + 2:][:1] not in (b"Z", b"X")


def test_a_run_that_kills_its_reaper_gets_no_cpu_figure(sandbox_tmp):
    outcome, _, _ = run_probe(LocalSandbox("reaper"), sandbox_tmp, """
        import os, signal
        os.kill(os.getppid(), signal.SIGKILL)
    """, DISK)
    assert outcome.cpu_s is None and not outcome.ok


def test_the_reaper_ends_a_run_at_its_time_limit(sandbox_tmp):
    outcome, _, _ = run_probe(LocalSandbox("reaper"), sandbox_tmp, """
        import os
        if os.fork() == 0:
            os.setsid()
        while True:
            pass
    """, replace(DISK, time_limit_s=1.0))
    assert outcome.failure_code == "time_limit"
    assert outcome.cpu_s is not None and outcome.cpu_s > 0  # the reaper ended both burners and still reported
