"""A started sandboxed process: how it is limited, ended and measured, and what came of it.

(Split from sandbox.py; ``sandbox`` re-exports :class:`RunOutcome`.)
"""

from __future__ import annotations

import itertools
import os
import resource
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from l402tui.evaluation.cgroups import CgroupAccount, remove_later

if TYPE_CHECKING:
    from l402tui.evaluation.sandbox import Limits

# The closed vocabulary of a failed run (an agent may learn this class and nothing
# else of how its run ended: the run chooses its own exit code).
FAILURE_CODES = ("time_limit", "memory_limit", "disk_limit", "crashed")
# bwrap and `timeout` (docker) exit 128 + N when the run died of signal N.
_XFSZ_EXIT = 128 + signal.SIGXFSZ

# uids used for sandboxed processes when we run as root (one per concurrent run),
# far from real users so RLIMIT_NPROC counts only the sandbox's own processes.
_UID_BASE = 61000
_uid_counter = itertools.count()
_uid_lock = threading.Lock()


@dataclass
class RunOutcome:
    exit_code: int | None
    timed_out: bool
    wall_s: float
    cpu_s: float | None
    peak_rss_mb: float | None
    runner: str
    killed_reason: str = ""
    log_bytes: int = 0
    log_truncated: bool = False
    time_limit_s: float = 0.0
    memory_exceeded: bool = False  # the kernel's OOM killer ended it (cgroup, container)
    disk_exceeded: bool = False  # it filled its disk (run_disk.py); stopped, outputs dropped
    disk_mb: int = 0
    # The slot's GPU, measured through NVML (telemetry/gpu_meter.py); None: not measured.
    gpu_s: float | None = None
    gpu_energy_j: float | None = None
    gpu_peak_mem_mb: float | None = None

    def measurements(self) -> dict[str, float | None]:
        """Every figure measured from outside, by the names of HARNESS_MEASUREMENTS."""
        return {"wall_s": self.wall_s, "cpu_s": self.cpu_s, "peak_rss_mb": self.peak_rss_mb,
                "gpu_s": self.gpu_s, "gpu_energy_j": self.gpu_energy_j, "gpu_peak_mem_mb": self.gpu_peak_mem_mb}

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out and not self.disk_exceeded and not self.memory_exceeded

    @property
    def failure_code(self) -> str | None:
        """None when ok, else one of :data:`FAILURE_CODES`: all of the ending an agent may learn."""
        if self.ok:
            return None
        if self.disk_exceeded:
            return "disk_limit"
        if self.timed_out:
            return "time_limit"
        if self.memory_exceeded:
            return "memory_limit"
        # A file reached RLIMIT_FSIZE (local: the signal itself; bwrap, docker: 128 + it).
        if self.exit_code == -signal.SIGXFSZ or (self.runner != "local" and self.exit_code == _XFSZ_EXIT):
            return "disk_limit"
        return "crashed"

    def describe_failure(self) -> str:
        """For the operator's log: may quote the exit code, which the run controls."""
        if self.disk_exceeded:
            return (f"the run exceeded its disk limit ({self.disk_mb} MB for work dir, artifacts and /tmp "
                    "together) and was stopped")
        if self.timed_out:
            return f"the run exceeded its time limit ({self.time_limit_s:g} s) and was killed"
        if self.killed_reason:
            return self.killed_reason
        if self.failure_code == "disk_limit":
            return "the run exceeded its file size limit and was killed"
        if self.exit_code is not None and self.exit_code < 0:
            return f"the run was killed by signal {-self.exit_code}"
        return f"the run exited with code {self.exit_code}"


MEMORY_KILLED = "the run exceeded its memory limit and was killed"


class _Running:
    """A started sandboxed process: wait() measures, kill() enforces a limit."""

    def __init__(self, proc: subprocess.Popen, runner: str, on_kill: Callable[[], None] | None = None,
                 cgroup: "CgroupAccount | None" = None):
        self.proc = proc
        self.runner = runner
        self.started = time.monotonic()
        self.killed_for_time = False
        self.killed_for_disk = False
        self._on_kill = on_kill
        self.cgroup = cgroup
        self.unmeasured = False

    def kill(self, reason: str = "time") -> None:
        if reason == "disk":
            self.killed_for_disk = True
        else:
            self.killed_for_time = True
        if self._on_kill is not None:
            self._on_kill()
        self._signal_group()
        if self.cgroup is not None:
            self.cgroup.kill_all()

    def _signal_group(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def _reap(self) -> tuple[int, resource.struct_rusage]:
        _, status, usage = os.wait4(self.proc.pid, 0)
        return status, usage

    def wait(self) -> RunOutcome:
        status, usage = self._reap()
        wall = time.monotonic() - self.started
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        # Descendants left in the process group die with the run.
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        outcome = RunOutcome(exit_code=self.proc.returncode, timed_out=False, wall_s=wall,
                             cpu_s=usage.ru_utime + usage.ru_stime, peak_rss_mb=usage.ru_maxrss / 1024,
                             runner=self.runner)
        if self.cgroup is not None:
            self.cgroup.kill_all()  # nothing outlives the run, not even a daemonised child
            outcome.cpu_s, outcome.peak_rss_mb = self.cgroup.read()
            if self.cgroup.oom_killed() and outcome.exit_code != 0:
                outcome.killed_reason, outcome.memory_exceeded = MEMORY_KILLED, True
            # The figures are read; the group empties a few ms after the reap, and
            # waiting for that is not the caller's time.
            remove_later(self.cgroup)
        elif self.unmeasured:
            outcome.cpu_s = outcome.peak_rss_mb = None
        return outcome


class _ReapedRunning(_Running):
    """A local run under reaper.py (no cgroup): the reaper's report replaces the
    rusage of one process, which misses every orphaned descendant."""

    def __init__(self, proc: subprocess.Popen, runner: str, result_r: int):
        super().__init__(proc, runner)
        self.result_r = result_r
        self._backstop: threading.Timer | None = None

    def _signal_group(self) -> None:
        # SIGTERM lets the reaper end the whole tree and still report; the group's
        # SIGKILL follows in case the run got the reaper itself stopped.
        try:
            os.kill(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        self._backstop = threading.Timer(2.0, super()._signal_group)
        self._backstop.start()

    def _reap(self) -> tuple[int, resource.struct_rusage]:
        reaped = super()._reap()
        if self._backstop is not None:
            self._backstop.cancel()  # the group is gone; its id may soon be someone else's
        return reaped

    def wait(self) -> RunOutcome:
        outcome = super().wait()
        with os.fdopen(self.result_r, "rb") as fh:
            report = fh.read(200).split()
        if len(report) == 4 and outcome.exit_code == 0 and int(report[0]) >= 0:
            outcome.exit_code = self.proc.returncode = os.waitstatus_to_exitcode(int(report[0]))
            outcome.cpu_s = float(report[1]) + float(report[2])
            outcome.peak_rss_mb = int(report[3]) / 1024
        else:
            # The reaper was killed (by the run: same user) or could not subreap: some
            # descendants may have gone unreaped, so no CPU figure is better than a low one.
            outcome.cpu_s = outcome.peak_rss_mb = None
            if outcome.exit_code == 0:
                outcome.exit_code = 1
        return outcome


def rlimit_values(limits: "Limits", nproc: int | None, address_space: bool) -> list[tuple[int, int, int]]:
    """(resource, soft, hard) for a run, in the order they are set."""
    out = []
    if address_space:
        mem = limits.memory_mb * 1024 * 1024
        out.append((resource.RLIMIT_AS, mem, mem))
    cpu = int(limits.time_limit_s * max(limits.cpus, 1)) + 1
    out.append((resource.RLIMIT_CPU, cpu, cpu + 1))
    fsize = file_size_bytes(limits)
    out.append((resource.RLIMIT_FSIZE, fsize, fsize))
    out.append((resource.RLIMIT_CORE, 0, 0))
    if nproc is not None:
        out.append((resource.RLIMIT_NPROC, nproc, nproc))
    return out


def file_size_bytes(limits: "Limits") -> int:
    """One file may be no larger than the file size limit nor the whole disk limit."""
    return min(limits.file_size_mb, limits.disk_mb) * 1024 * 1024


def rlimits(limits: "Limits", nproc: int | None, *, address_space: bool = True,
            cgroup: "CgroupAccount | None" = None, uid: int | None = None) -> Callable[[], None]:
    """Runs in the child between fork and exec: join the cgroup, set limits, drop to uid.
    (bwrap_spare.LAUNCHER does the same in the same order.)"""
    values = rlimit_values(limits, nproc, address_space)

    cpuset = set(limits.cpuset)

    def apply() -> None:
        if cgroup is not None:
            cgroup.join()
        if cpuset:
            # The slot's cores (the cgroup's cpuset enforces them when there is one; alone,
            # affinity keeps an honest run on its cores but the run could widen it).
            os.sched_setaffinity(0, cpuset)
        for which, soft, hard in values:
            resource.setrlimit(which, (soft, hard))
        if uid is not None:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)

    return apply


def user_process_count(uid: int) -> int:
    count = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    count += 1
            except OSError:
                continue
    return count


def next_uid() -> int:
    with _uid_lock:
        return _UID_BASE + next(_uid_counter) % 1000
