"""Cgroups around sandboxed runs: CPU time and peak memory measured from outside, and
(for bubblewrap run by root) real total-memory and process-count limits."""

from __future__ import annotations

import atexit
import os
import signal
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from l402tui.evaluation.sandbox import Limits


class CgroupAccount:
    """A cgroup (v1 cpuacct/memory/pids, or v2) around one run.

    For docker it is the ``--cgroup-parent``: parents keep the CPU time and memory
    high-water mark of their children after the container's own cgroup is gone.  For
    bwrap (root only) the run joins it directly, which also gives a real total memory
    limit and a pids limit; rlimits alone cannot stop a fork bomb run by root.
    """

    ROOT = Path("/sys/fs/cgroup")
    V1 = ("cpuacct", "memory", "pids")

    def __init__(self, name: str):
        self.name = name
        self.dirs: list[Path] = []

    @classmethod
    def v1(cls) -> bool:
        return (cls.ROOT / "memory" / "memory.max_usage_in_bytes").exists()

    @classmethod
    def usable(cls) -> bool:
        return os.geteuid() == 0 and (cls.v1() or (cls.ROOT / "cgroup.controllers").exists())

    def create(self, limits: Limits) -> bool:
        """Make the group with limits; False (and nothing left behind) if the kernel refuses."""
        try:
            if self.v1():
                for ctrl in self.V1:
                    d = self.ROOT / ctrl / self.name
                    d.mkdir()
                    self.dirs.append(d)
                mem = str(limits.memory_mb * 1024 * 1024)
                (self.ROOT / "memory" / self.name / "memory.limit_in_bytes").write_text(mem)
                memsw = self.ROOT / "memory" / self.name / "memory.memsw.limit_in_bytes"
                if memsw.exists():
                    memsw.write_text(mem)
                (self.ROOT / "pids" / self.name / "pids.max").write_text(str(limits.pids))
                if limits.cpuset:
                    self._cpuset_v1(limits.cpuset)
            else:
                d = self.ROOT / self.name
                d.mkdir()
                self.dirs.append(d)
                (d / "memory.max").write_text(str(limits.memory_mb * 1024 * 1024))
                (d / "memory.swap.max").write_text("0")
                (d / "pids.max").write_text(str(limits.pids))
                if limits.cpuset and "cpuset" in (self.ROOT / "cgroup.subtree_control").read_text().split():
                    (d / "cpuset.cpus").write_text(_cpu_list(limits.cpuset))
        except OSError:
            self.read_and_remove()
            return False
        return True

    def _cpuset_v1(self, cores: tuple[int, ...]) -> None:
        """The slot's cores, enforced: the run cannot widen its affinity beyond them."""
        root = self.ROOT / "cpuset"
        if not (root / "cpuset.cpus").exists():
            return  # no cpuset controller mounted: affinity alone (run_process.rlimits)
        d = root / self.name
        d.mkdir()
        self.dirs.append(d)
        # A v1 cpuset needs its memory nodes before a task may join.
        (d / "cpuset.mems").write_text((root / "cpuset.mems").read_text().strip())
        (d / "cpuset.cpus").write_text(_cpu_list(cores))

    def join(self) -> None:
        """Move the calling process in (used from a child before it execs)."""
        pid = str(os.getpid())
        for d in self.dirs:
            (d / "cgroup.procs").write_text(pid)

    def kill_all(self) -> None:
        for d in self.dirs:
            procs = d / "cgroup.procs"
            try:
                pids = [int(p) for p in procs.read_text().split()]
            except OSError:
                continue
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def oom_killed(self) -> bool:
        try:
            if self.v1():
                control = (self.ROOT / "memory" / self.name / "memory.oom_control").read_text()
                return any(line.split()[0] == "oom_kill" and int(line.split()[1]) > 0
                           for line in control.splitlines())
            events = (self.ROOT / self.name / "memory.events").read_text()
            return any(line.split()[0] == "oom_kill" and int(line.split()[1]) > 0 for line in events.splitlines())
        except (OSError, ValueError, IndexError):
            return False

    def read(self) -> tuple[float | None, float | None]:
        cpu = mem = None
        try:
            if self.v1():
                cpu_file = self.ROOT / "cpuacct" / self.name / "cpuacct.usage"
                mem_file = self.ROOT / "memory" / self.name / "memory.max_usage_in_bytes"
                if cpu_file.exists():
                    cpu = int(cpu_file.read_text()) / 1e9
                if mem_file.exists():
                    mem = int(mem_file.read_text()) / (1024 * 1024)
            else:
                base = self.ROOT / self.name
                stat = base / "cpu.stat"
                if stat.exists():
                    for line in stat.read_text().splitlines():
                        if line.startswith("usage_usec"):
                            cpu = int(line.split()[1]) / 1e6
                if (base / "memory.peak").exists():
                    mem = int((base / "memory.peak").read_text()) / (1024 * 1024)
        except (OSError, ValueError):
            pass
        return cpu, mem

    def read_and_remove(self) -> tuple[float | None, float | None]:
        cpu, mem = self.read()
        self.remove()
        return cpu, mem

    def remove(self) -> None:
        # A group can only be removed once empty; killed processes take a moment to go.
        for _ in range(400):
            self.kill_all()
            for path in [*self.ROOT.glob(f"*/{self.name}"), self.ROOT / self.name]:
                _rmdir_quietly(path)
            if not any(p.exists() for p in [*self.ROOT.glob(f"*/{self.name}"), self.ROOT / self.name]):
                return
            time.sleep(0.005)


def _cpu_list(cores: tuple[int, ...]) -> str:
    return ",".join(str(c) for c in sorted(cores))


_pending_removals: set[threading.Thread] = set()


def remove_later(cgroup: CgroupAccount) -> None:
    thread = threading.Thread(target=cgroup.remove, daemon=True)
    _pending_removals.add(thread)
    thread.start()


@atexit.register
def _finish_removals() -> None:
    # A short-lived CLI must not exit leaving empty cgroups behind.
    for thread in list(_pending_removals):
        thread.join(timeout=3)


def _rmdir_quietly(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:
        pass


def sweep_stale_cgroups(min_age_s: float = 600.0) -> int:
    """Remove our empty cgroups left by a process killed before it could (age-gated so
    a group another process has just created for its next run is never touched)."""
    removed = 0
    now = time.time()
    for path in [*CgroupAccount.ROOT.glob("*/l402tui-*"), *CgroupAccount.ROOT.glob("l402tui-*")]:
        try:
            if not path.is_dir() or now - path.stat().st_mtime < min_age_s:
                continue
            path.rmdir()  # fails (and is left alone) while any process or child group is inside
            removed += 1
        except OSError:
            continue
    return removed
