"""Where untrusted code runs: one interface, three runners, picked automatically.

- ``docker``: a throw-away container (no network, read-only root, non-root user,
  all capabilities dropped, memory/CPU/pids limits, wall-clock limit), only from an
  image already in the local engine (``--pull never``: a missing image is refused,
  never fetched).  CPU time and peak memory come from the container's cgroup.
- ``bwrap``: bubblewrap with every namespace unshared (so no network), read-only
  binds of /usr, rlimits for memory, CPU, file size and process count, and a
  wall-clock limit.  When we are root the sandbox runs under a dedicated uid, since
  the kernel does not apply RLIMIT_NPROC to root (a fork bomb would go through).
- ``local``: a plain subprocess with rlimits and a time limit.  No isolation at all:
  the harness runs untrusted code here only when the operator allowed it.

Every runner measures wall time, CPU time and peak RSS from outside the sandbox
(wait4 rusage or cgroup counters); the code inside never reports its own figures.
"""

from __future__ import annotations

import atexit
import itertools
import os
import resource
import shutil
import signal
import subprocess
import threading
import time
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from l402tui.evaluation.untrusted_log import LogSink

SANDBOX_KINDS = ("docker", "bwrap", "local")
# Inside docker and bwrap the three directories always appear at these paths.
MOUNTS = {"workdir": "/work", "inputs": "/inputs", "artifacts": "/artifacts"}
# uids used for sandboxed processes when we run as root (one per concurrent run),
# far from real users so RLIMIT_NPROC counts only the sandbox's own processes.
_UID_BASE = 61000
_uid_counter = itertools.count()
_uid_lock = threading.Lock()


class SandboxUnavailable(RuntimeError):
    """The requested runner cannot work here; the message says how to fix it."""


@dataclass(frozen=True)
class Limits:
    memory_mb: int = 1024
    cpus: float = 1.0
    time_limit_s: float = 60.0
    pids: int = 256
    file_size_mb: int = 512
    gpu: bool = False


@dataclass(frozen=True)
class Layout:
    """Host directories of one run: the writable work copy, the read-only inputs and
    the writable, initially empty artifacts dir."""

    workdir: Path
    inputs: Path
    artifacts: Path


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

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out

    def describe_failure(self) -> str:
        """A reason an agent may see: says what happened, never what the code printed."""
        if self.timed_out:
            return f"the run exceeded its time limit ({self.time_limit_s:g} s) and was killed"
        if self.killed_reason:
            return self.killed_reason
        if self.exit_code is not None and self.exit_code < 0:
            return f"the run was killed by signal {-self.exit_code}"
        return f"the run exited with code {self.exit_code}"


@dataclass
class RunnerStatus:
    kind: str
    available: bool
    detail: str
    isolated: bool = True
    extra: dict[str, str] = field(default_factory=dict)


class Sandbox(ABC):
    kind: str = ""
    isolated: bool = True
    # Added to the outer wall-clock limit when the runner enforces the real limit
    # itself once the code has started (docker: container start-up is not the code's time).
    startup_allowance_s: float = 0.0

    def placeholders(self, layout: Layout) -> dict[str, str]:
        """Values for ``{workdir}``, ``{inputs}``, ``{artifacts}`` as the code inside sees them."""
        return dict(MOUNTS)

    @abstractmethod
    def _spawn(self, argv: list[str], layout: Layout, limits: Limits, env: dict[str, str],
               stdin: int | None, stdout: int | None, stderr: int, uid: int | None) -> "_Running":
        ...

    def run(self, argv: list[str], layout: Layout, limits: Limits, *,
            log: LogSink, stdin: int | None = None, stdout: int | None = None,
            extra_env: dict[str, str] | None = None) -> RunOutcome:
        """Run ``argv`` (placeholders already rendered) and wait, killing it at the time limit.

        Batch mode leaves ``stdin``/``stdout`` as None: stdin is empty and stdout and
        stderr both go to ``log``.  Interactive mode passes pipe fds for stdin/stdout
        (this call closes them once the child holds them); stderr goes to ``log``.
        """
        uid = self._sandbox_uid()
        _prepare_layout(layout, uid, self.kind == "bwrap")
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8",
               "PYTHONDONTWRITEBYTECODE": "1",
               **{f"L402_{k.upper()}": v for k, v in self.placeholders(layout).items()}, **(extra_env or {})}
        read_fd, write_fd = os.pipe()
        child_stdout = stdout if stdout is not None else write_fd
        try:
            running = self._spawn(argv, layout, limits, env,
                                  stdin if stdin is not None else subprocess.DEVNULL, child_stdout, write_fd, uid)
        finally:
            os.close(write_fd)
            for fd in (stdin, stdout):
                if fd is not None:
                    os.close(fd)
        pump = threading.Thread(target=log.pump, args=(read_fd,), daemon=True)
        pump.start()
        timer = threading.Timer(limits.time_limit_s + self.startup_allowance_s, running.kill)
        timer.start()
        try:
            outcome = running.wait()
        finally:
            timer.cancel()
        pump.join(timeout=5)
        outcome.timed_out = outcome.timed_out or running.killed_for_time
        outcome.time_limit_s = limits.time_limit_s
        outcome.log_bytes, outcome.log_truncated = log.written, log.truncated
        return outcome

    def _sandbox_uid(self) -> int | None:
        return None


def _prepare_layout(layout: Layout, uid: int | None, check_reach: bool) -> None:
    """Give the sandbox user the writable dirs and read access to the inputs."""
    for path in (layout.workdir, layout.artifacts):
        for p in [path, *path.rglob("*")]:
            if p.is_symlink():
                continue
            if uid is not None:
                os.chown(p, uid, uid)
            else:
                os.chmod(p, 0o777 if p.is_dir() else 0o666)
    for p in [layout.inputs, *layout.inputs.rglob("*")]:
        if not p.is_symlink():
            os.chmod(p, 0o755 if p.is_dir() else 0o644)
    if uid is None or not check_reach:
        return
    # The unprivileged bwrap resolves these paths as the sandbox uid, so every
    # ancestor must be traversable; say which one is not rather than fail inside bwrap.
    for path in (layout.workdir, layout.inputs, layout.artifacts):
        for parent in path.resolve().parents:
            if parent.stat().st_mode & 0o001 == 0:
                raise SandboxUnavailable(
                    f"{path} is not reachable for the sandbox user: {parent} is not traversable by others "
                    f"(mode {parent.stat().st_mode & 0o777:o}); put evaluation dirs under a 0711 directory")


class _Running:
    """A started sandboxed process: wait() measures, kill() enforces the time limit."""

    def __init__(self, proc: subprocess.Popen, runner: str, on_kill: Callable[[], None] | None = None,
                 cgroup: "CgroupAccount | None" = None):
        self.proc = proc
        self.runner = runner
        self.started = time.monotonic()
        self.killed_for_time = False
        self._on_kill = on_kill
        self.cgroup = cgroup
        self.unmeasured = False

    def kill(self) -> None:
        self.killed_for_time = True
        if self._on_kill is not None:
            self._on_kill()
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if self.cgroup is not None:
            self.cgroup.kill_all()

    def wait(self) -> RunOutcome:
        _, status, usage = os.wait4(self.proc.pid, 0)
        wall = time.monotonic() - self.started
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        # Descendants left in the process group (local runner) die with the run.
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
                outcome.killed_reason = "the run exceeded its memory limit and was killed"
            # The figures are read; the group empties a few ms after the reap, and
            # waiting for that is not the caller's time.
            _remove_later(self.cgroup)
        elif self.unmeasured:
            outcome.cpu_s = outcome.peak_rss_mb = None
        return outcome


def _rlimits(limits: Limits, nproc: int | None, *, address_space: bool = True,
             cgroup: "CgroupAccount | None" = None, uid: int | None = None) -> Callable[[], None]:
    """Runs in the child between fork and exec: join the cgroup, set limits, drop to uid."""

    def apply() -> None:
        if cgroup is not None:
            cgroup.join()
        if address_space:
            mem = limits.memory_mb * 1024 * 1024
            resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
        cpu = int(limits.time_limit_s * max(limits.cpus, 1)) + 1
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        fsize = limits.file_size_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if nproc is not None:
            resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
        if uid is not None:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)

    return apply


def _user_process_count(uid: int) -> int:
    count = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    count += 1
            except OSError:
                continue
    return count


def _next_uid() -> int:
    with _uid_lock:
        return _UID_BASE + next(_uid_counter) % 1000


class LocalSandbox(Sandbox):
    """No isolation: rlimits and a time limit only.  Paths are the real host paths."""

    kind = "local"
    isolated = False

    def placeholders(self, layout: Layout) -> dict[str, str]:
        return {"workdir": str(layout.workdir), "inputs": str(layout.inputs), "artifacts": str(layout.artifacts)}

    def _spawn(self, argv, layout, limits, env, stdin, stdout, stderr, uid) -> _Running:
        env = {**os.environ, **env, "HOME": os.environ.get("HOME", "/tmp")}
        proc = subprocess.Popen(argv, cwd=layout.workdir, env=env, stdin=stdin, stdout=stdout, stderr=stderr,
                                start_new_session=True, preexec_fn=_rlimits(limits, None))
        return _Running(proc, self.kind)


class BwrapSandbox(Sandbox):
    kind = "bwrap"

    def __init__(self, bwrap: str | None = None):
        self.bwrap = bwrap or shutil.which("bwrap")
        if not self.bwrap:
            raise SandboxUnavailable("bubblewrap is not installed: apt-get install bubblewrap")

    def _sandbox_uid(self) -> int | None:
        return _next_uid() if os.geteuid() == 0 else None

    def base_args(self) -> list[str]:
        """bwrap with all namespaces unshared and the system's /usr (read-only) inside."""
        cmd = [self.bwrap, "--unshare-all", "--die-with-parent", "--new-session", "--ro-bind", "/usr", "/usr"]
        for top in ("bin", "lib", "lib32", "lib64", "sbin"):
            path = Path("/") / top
            if path.is_symlink():
                cmd += ["--symlink", os.readlink(path), str(path)]
            elif path.is_dir():
                cmd += ["--ro-bind", str(path), str(path)]
        # Just enough of /etc for the dynamic loader and Debian's alternatives (numpy's
        # BLAS is found through /etc/alternatives); nothing with accounts or secrets.
        for name in ("alternatives", "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime"):
            if (Path("/etc") / name).exists():
                cmd += ["--ro-bind", f"/etc/{name}", f"/etc/{name}"]
        return cmd

    def _spawn(self, argv, layout, limits, env, stdin, stdout, stderr, uid) -> _Running:
        cmd = self.base_args()
        cmd += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp",
                "--bind", str(layout.workdir), MOUNTS["workdir"],
                "--ro-bind", str(layout.inputs), MOUNTS["inputs"],
                "--bind", str(layout.artifacts), MOUNTS["artifacts"],
                "--remount-ro", "/",  # the sandbox's own root tmpfs; /work, /artifacts, /tmp stay writable
                "--chdir", MOUNTS["workdir"], "--clearenv", "--uid", "65534", "--gid", "65534"]
        if limits.gpu:
            for dev in sorted(Path("/dev").glob("nvidia*")):
                cmd += ["--dev-bind", str(dev), str(dev)]
        for key, value in env.items():
            cmd += ["--setenv", key, value]
        cmd += ["--", *argv]
        cgroup = None
        if uid is not None:
            nproc = limits.pids
            if CgroupAccount.usable():
                cgroup = CgroupAccount(f"l402tui-bwrap-{uuid.uuid4().hex[:12]}")
                if not cgroup.create(limits):
                    cgroup = None
        else:
            # Unprivileged: RLIMIT_NPROC counts all of this user's processes.
            nproc = _user_process_count(os.geteuid()) + limits.pids
        limit = _rlimits(limits, nproc, address_space=cgroup is None, cgroup=cgroup, uid=uid)
        proc = subprocess.Popen(cmd, stdin=stdin, stdout=stdout, stderr=stderr, env={"PATH": "/usr/bin:/bin"},
                                start_new_session=True, preexec_fn=limit)
        running = _Running(proc, self.kind, cgroup=cgroup)
        if cgroup is None:
            # bwrap does not reap the sandboxed process itself, so its rusage misses the
            # code that ran: report nothing rather than a wrong figure.
            running.unmeasured = True
        return running


class DockerSandbox(Sandbox):
    """Containers started with the docker CLI (pipes work for interactive runs the same
    way as batch ones); the engine and image are checked with the docker SDK first."""

    kind = "docker"
    startup_allowance_s = 30.0

    def __init__(self, image: str, docker: str | None = None):
        self.image = image
        self.docker = docker or shutil.which("docker")
        if not self.docker:
            raise SandboxUnavailable("the docker CLI is not installed: run scripts/docker-setup.sh")

    def _sandbox_uid(self) -> int | None:
        return _next_uid() if os.geteuid() == 0 else None

    def _spawn(self, argv, layout, limits, env, stdin, stdout, stderr, uid) -> _Running:
        name = f"l402tui-eval-{uuid.uuid4().hex[:12]}"
        cgroup = CgroupAccount(f"l402tui-{name}")
        cmd = [self.docker, "run", "--name", name, "--pull", "never", "--network", "none",
               "--memory", f"{limits.memory_mb}m", "--memory-swap", f"{limits.memory_mb}m",
               "--cpus", f"{limits.cpus:g}", "--pids-limit", str(limits.pids),
               "--read-only", "--tmpfs", "/tmp:rw,nosuid,nodev,size=64m",
               "--user", f"{uid or 65534}:{uid or 65534}", "--cap-drop", "ALL",
               "--security-opt", "no-new-privileges", "--ulimit", f"fsize={limits.file_size_mb * 1024 * 1024}",
               "--ulimit", "core=0", "--cgroup-parent", f"/{cgroup.name}",
               "-v", f"{layout.workdir}:{MOUNTS['workdir']}:rw",
               "-v", f"{layout.inputs}:{MOUNTS['inputs']}:ro",
               "-v", f"{layout.artifacts}:{MOUNTS['artifacts']}:rw",
               "-w", MOUNTS["workdir"]]
        if limits.gpu:
            cmd += ["--gpus", "all"]
        if stdin != subprocess.DEVNULL:
            cmd.append("-i")
        for key, value in env.items():
            cmd += ["-e", f"{key}={value}"]
        # The time limit starts inside the container, so a slow container start on a
        # busy host is not charged to the code; the outer timer is only a backstop.
        cmd += [self.image, "timeout", "--signal=KILL", f"{limits.time_limit_s:g}", *argv]
        proc = subprocess.Popen(cmd, stdin=stdin, stdout=stdout, stderr=stderr, start_new_session=True)
        docker = self.docker

        def kill_container() -> None:
            subprocess.run([docker, "kill", name], capture_output=True, timeout=30)

        running = _DockerRunning(proc, self.kind, kill_container, name, docker, cgroup)
        running.time_limit_s = limits.time_limit_s
        return running


class _DockerRunning(_Running):
    def __init__(self, proc, runner, on_kill, name: str, docker: str, cgroup: "CgroupAccount"):
        super().__init__(proc, runner, on_kill)
        # Kept apart from the base class's cgroup: the engine owns the container's
        # group, and it is read only after the container is gone.
        self.name, self.docker, self.parent_cgroup = name, docker, cgroup

    def wait(self) -> RunOutcome:
        outcome = super().wait()  # rusage of the CLI is meaningless; replaced below
        inspect = subprocess.run([self.docker, "inspect", "--format",
                                  "{{.State.ExitCode}} {{.State.OOMKilled}} {{.State.StartedAt}} {{.State.FinishedAt}}",
                                  self.name], capture_output=True, text=True, timeout=30)
        subprocess.run([self.docker, "rm", "-f", self.name], capture_output=True, timeout=30)
        outcome.cpu_s, outcome.peak_rss_mb = self.parent_cgroup.read_and_remove()
        parts = inspect.stdout.split()
        if inspect.returncode != 0 or len(parts) != 4:
            outcome.killed_reason = "the container could not be started (is the image present?)"
            outcome.exit_code = outcome.exit_code or 125
            return outcome
        outcome.exit_code = int(parts[0])
        started, finished = _docker_time(parts[2]), _docker_time(parts[3])
        if started and finished and finished >= started:
            outcome.wall_s = finished - started  # the engine's clock, without container start-up
        if parts[1] == "true":
            outcome.killed_reason = "the run exceeded its memory limit and was killed"
        elif outcome.exit_code == 137 and outcome.wall_s >= self.time_limit_s * 0.98:
            outcome.timed_out = True  # SIGKILL from `timeout` inside the container
        return outcome


def _docker_time(text: str) -> float | None:
    import datetime as dt

    # RFC 3339 with nanoseconds; Python parses at most microseconds.
    head, _, frac = text.rstrip("Z").partition(".")
    try:
        base = dt.datetime.fromisoformat(head).replace(tzinfo=dt.timezone.utc)
    except ValueError:
        return None
    return base.timestamp() + (float("0." + frac) if frac.isdigit() else 0.0)


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
            else:
                d = self.ROOT / self.name
                d.mkdir()
                self.dirs.append(d)
                (d / "memory.max").write_text(str(limits.memory_mb * 1024 * 1024))
                (d / "memory.swap.max").write_text("0")
                (d / "pids.max").write_text(str(limits.pids))
        except OSError:
            self.read_and_remove()
            return False
        return True

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


_pending_removals: set[threading.Thread] = set()


def _remove_later(cgroup: CgroupAccount) -> None:
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
