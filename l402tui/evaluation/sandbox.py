"""Where untrusted code runs: one interface, three runners, picked automatically.

- ``docker`` (``docker_sandbox.py``): a throw-away container (no network, read-only root, non-root user,
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
(cgroup counters, or the rusage of a reaper that reaps every descendant); the code
inside never reports its own figures, and a runner that cannot count every process
of a run reports no CPU figure rather than a low one.  What a run writes (work dir,
artifacts, /tmp) is capped in total at ``Limits.disk_mb`` (run_disk.py).
"""

from __future__ import annotations

import contextvars
import os
import shutil
import subprocess
import sys
import threading
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from l402tui.evaluation.bwrap_spare import Spare, SparePool, start_spare
from l402tui.evaluation.cgroups import CgroupAccount
from l402tui.evaluation.run_disk import RunDisk
from l402tui.evaluation.run_process import (FAILURE_CODES, RunOutcome, _ReapedRunning, _Running, next_uid,
                                            rlimits, user_process_count)
from l402tui.evaluation.untrusted_log import LogSink
from l402tui.telemetry.gpu import GpuDevice
from l402tui.telemetry.gpu_meter import GpuMeter

# Older names, kept for importers.
_next_uid, _rlimits, _user_process_count = next_uid, rlimits, user_process_count

SANDBOX_KINDS = ("docker", "bwrap", "local")
# Inside docker and bwrap the three directories always appear at these paths.
MOUNTS = {"workdir": "/work", "inputs": "/inputs", "artifacts": "/artifacts"}


class RunGroup:
    """The sandboxed processes of one evaluation, so that cancelling it ends exactly
    those (two agents in one process must not end each other's runs).  Set it with
    :data:`RUN_GROUP` around ``harness.evaluate``: the context reaches the harness's
    threads, and every run started there joins the group; one started after
    :meth:`cancel` is ended at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: list[_Running] = []
        self.cancelled = False

    def add(self, running: "_Running") -> None:
        with self._lock:
            self._runs.append(running)
            cancelled = self.cancelled
        if cancelled:
            running.kill()

    def cancel(self) -> None:
        with self._lock:
            self.cancelled = True
            runs = list(self._runs)
        for running in runs:
            running.kill()


RUN_GROUP: contextvars.ContextVar[RunGroup | None] = contextvars.ContextVar("l402tui_run_group", default=None)


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
    disk_mb: int = 512  # work dir + artifacts + /tmp, together (run_disk.py)
    # The evaluation's slot (slots.py): the cores the run is pinned to (empty: any) and
    # the one GPU it may see (None with gpu=True: every GPU, as on an agent's own machine).
    cpuset: tuple[int, ...] = ()
    gpu_device: GpuDevice | None = None


@dataclass(frozen=True)
class Layout:
    """Host directories of one run: the writable work copy, the read-only inputs and
    the writable, initially empty artifacts dir."""

    workdir: Path
    inputs: Path
    artifacts: Path
    tmp: Path | None = None  # the run's /tmp on the host; Sandbox.run sets it


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
    # run_disk.py: "tmpfs", "watch", or None for the best this process can do.
    disk_mode: str | None = None

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
        # A batch run may use a process started ahead for these limits (see bwrap_spare.py).
        spare = self._take_spare(limits) if stdin is None and stdout is None else None
        uid = spare.uid if spare is not None else self._sandbox_uid()
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8",
               "PYTHONDONTWRITEBYTECODE": "1",
               **{f"L402_{k.upper()}": v for k, v in self.placeholders(layout).items()}, **(extra_env or {})}
        if limits.gpu_device is not None:
            env.update(gpu_env(limits.gpu_device))
        elif not limits.gpu:
            # A bounty that asked for no GPU gets none, also from the local runner (which
            # shows the host's /dev): on a GPU rig it is measured as on any other machine.
            env["CUDA_VISIBLE_DEVICES"] = ""
        try:
            disk = RunDisk(layout.workdir, layout.artifacts, limits.disk_mb, uid, self.disk_mode)
        except BaseException:
            if spare is not None:
                spare.discard()
            for fd in (stdin, stdout):
                if fd is not None:
                    os.close(fd)
            raise
        layout = replace(layout, tmp=disk.tmp)
        try:
            running, read_fd = self._start(argv, layout, limits, env, stdin, stdout, uid, spare)
        except BaseException:
            disk.close()
            raise
        self._refill(limits)
        group = RUN_GROUP.get()
        if group is not None:
            group.add(running)
        pump = threading.Thread(target=log.pump, args=(read_fd,), daemon=True)
        pump.start()
        timer = threading.Timer(limits.time_limit_s + self.startup_allowance_s, running.kill)
        timer.start()
        stop_watch = threading.Event()
        watcher = disk.watch(stop_watch, lambda: running.kill("disk"))
        # The slot's GPU, measured from outside for as long as the run holds it.
        meter = GpuMeter(limits.gpu_device).start() if limits.gpu and limits.gpu_device is not None else None
        try:
            outcome = running.wait()
        finally:
            if meter is not None:
                usage = meter.stop()
            timer.cancel()
            stop_watch.set()
            watcher.join()
            # Every process of the run is gone: the last measure, the outputs back, cleanup.
            outcome_disk = disk.finish()
        pump.join(timeout=5)
        outcome.disk_exceeded = outcome_disk or running.killed_for_disk
        outcome.disk_mb = limits.disk_mb
        outcome.timed_out = outcome.timed_out or running.killed_for_time
        outcome.time_limit_s = limits.time_limit_s
        outcome.log_bytes, outcome.log_truncated = log.written, log.truncated
        if meter is not None:
            outcome.gpu_s, outcome.gpu_energy_j, outcome.gpu_peak_mem_mb = \
                usage.gpu_s, usage.gpu_energy_j, usage.gpu_peak_mem_mb
        return outcome

    def _start(self, argv: list[str], layout: Layout, limits: Limits, env: dict[str, str], stdin: int | None,
               stdout: int | None, uid: int | None, spare: "Spare | None") -> tuple["_Running", int]:
        """Start the run (from ``spare`` if there is one); returns it and the read end of its log."""
        if spare is not None:
            try:
                _prepare_layout(layout, uid, self.kind == "bwrap", shared=self._shares_files(uid))
                running = self._launch_spare(spare, argv, layout, limits, env)
            except BaseException:
                spare.discard()
                raise
            return running, spare.log_r
        try:
            _prepare_layout(layout, uid, self.kind == "bwrap", shared=self._shares_files(uid))
            read_fd, write_fd = os.pipe()
        except BaseException:
            for fd in (stdin, stdout):
                if fd is not None:
                    os.close(fd)
            raise
        child_stdout = stdout if stdout is not None else write_fd
        try:
            running = self._spawn(argv, layout, limits, env,
                                  stdin if stdin is not None else subprocess.DEVNULL, child_stdout, write_fd,
                                  uid)
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
            for fd in (stdin, stdout):
                if fd is not None:
                    os.close(fd)
        return running, read_fd

    def _sandbox_uid(self) -> int | None:
        return None

    def _shares_files(self, uid: int | None) -> bool:
        """Whether the run reads and writes its files as a user that is neither ``uid`` nor us
        (docker without root: the container's user), so they must be open to others."""
        return uid is None and self.kind == "docker"

    # Runners that can start a process ahead of its run override these three.
    def _take_spare(self, limits: Limits) -> "Spare | None":
        return None

    def _refill(self, limits: Limits) -> None:
        return None

    def _launch_spare(self, spare: "Spare", argv: list[str], layout: Layout, limits: Limits,
                      env: dict[str, str]) -> "_Running":
        raise NotImplementedError(f"the {self.kind} runner starts no process ahead")


def _prepare_layout(layout: Layout, uid: int | None, check_reach: bool, *, shared: bool = False) -> None:
    """Give the sandbox user the writable dirs and read access to the inputs, and nobody else.

    The inputs are held-out data while the run lasts and the work dir is what gets scored:
    with a run uid (root) both belong to that uid alone; without one the run is this user,
    and owner-only modes suffice.  Only ``shared`` (docker without root, whose container
    user is not us) must open them to others."""
    for path in (layout.workdir, layout.artifacts):
        for p in [path, *path.rglob("*")]:
            if p.is_symlink():
                continue
            if uid is not None:
                os.chown(p, uid, uid)
                os.chmod(p, 0o700 if p.is_dir() else 0o600)
            elif shared:
                os.chmod(p, 0o777 if p.is_dir() else 0o666)
            else:
                os.chmod(p, 0o700 if p.is_dir() else 0o600)
    for p in [layout.inputs, *layout.inputs.rglob("*")]:
        if p.is_symlink():
            continue
        if uid is not None:
            os.chown(p, uid, uid)
            os.chmod(p, 0o500 if p.is_dir() else 0o400)
        else:
            os.chmod(p, (0o755 if p.is_dir() else 0o644) if shared else (0o700 if p.is_dir() else 0o600))
    if layout.tmp is not None and not shared:
        os.chmod(layout.tmp, 0o700)  # the run's own /tmp (run_disk.py made it 1777 and gave it to uid)
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


def gpu_env(device: GpuDevice) -> dict[str, str]:
    """CUDA sees the slot's GPU only, named by UUID (CUDA's index order may differ from NVML's)."""
    return {"CUDA_VISIBLE_DEVICES": device.visible_id, "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}


# Device nodes every CUDA process needs besides its GPU's own /dev/nvidiaN.
GPU_CONTROL_NODES = ("/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools", "/dev/nvidia-modeset")


def gpu_nodes(device: GpuDevice | None) -> list[str]:
    """The /dev nodes a run may open: its GPU's and the control nodes; every GPU's without a slot."""
    if device is None:
        return [str(d) for d in sorted(Path("/dev").glob("nvidia*"))]
    nodes = [device.dev_path, *GPU_CONTROL_NODES]
    caps = Path("/dev/nvidia-caps")  # MIG capabilities, where present
    return [n for n in nodes if Path(n).exists()] + ([str(caps)] if caps.is_dir() else [])


REAPER = Path(__file__).with_name("reaper.py")


class LocalSandbox(Sandbox):
    """No isolation: rlimits and a time limit only.  Paths are the real host paths.

    CPU time counts every process the run starts, orphans included: as root the run
    goes into its own cgroup (which also ends every process of it afterwards);
    otherwise it runs under reaper.py, a child subreaper that reaps them all.
    ``accounting`` forces one ("cgroup" or "reaper")."""

    kind = "local"
    isolated = False

    def __init__(self, accounting: str | None = None):
        if accounting not in (None, "cgroup", "reaper"):
            raise ValueError(f"accounting must be 'cgroup' or 'reaper', not {accounting!r}")
        self.accounting = accounting or ("cgroup" if CgroupAccount.usable() else "reaper")

    def placeholders(self, layout: Layout) -> dict[str, str]:
        return {"workdir": str(layout.workdir), "inputs": str(layout.inputs), "artifacts": str(layout.artifacts)}

    def _spawn(self, argv, layout, limits, env, stdin, stdout, stderr, uid) -> _Running:
        env = {**os.environ, **env, "HOME": os.environ.get("HOME", "/tmp"), "TMPDIR": str(layout.tmp)}
        if self.accounting == "cgroup":
            cgroup = CgroupAccount(f"l402tui-local-{uuid.uuid4().hex[:12]}")
            if cgroup.create(limits):
                proc = subprocess.Popen(argv, cwd=layout.workdir, env=env, stdin=stdin, stdout=stdout,
                                        stderr=stderr, start_new_session=True,
                                        preexec_fn=rlimits(limits, None, address_space=False, cgroup=cgroup))
                return _Running(proc, self.kind, cgroup=cgroup)
        result_r, result_w = os.pipe()
        try:
            proc = subprocess.Popen([sys.executable, "-I", "-S", str(REAPER), str(result_w), "--", *argv],
                                    cwd=layout.workdir, env=env, stdin=stdin, stdout=stdout, stderr=stderr,
                                    start_new_session=True, preexec_fn=rlimits(limits, None),
                                    pass_fds=(result_w,))
        except BaseException:
            os.close(result_r)
            raise
        finally:
            os.close(result_w)
        return _ReapedRunning(proc, self.kind, result_r)


class BwrapSandbox(Sandbox):
    kind = "bwrap"

    def __init__(self, bwrap: str | None = None):
        self.bwrap = bwrap or shutil.which("bwrap")
        if not self.bwrap:
            raise SandboxUnavailable("bubblewrap is not installed: apt-get install bubblewrap")
        self._spares = SparePool(self._start_spare)
        self.spare_runs = 0  # runs started from a spare (bwrap_spare.py)

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

    def _options(self, layout, limits, env) -> list[str]:
        """bwrap's options for one run: everything but the binary and the command."""
        cmd = self.base_args()[1:]
        # /tmp is the run's own (run_disk.py), under the same disk limit as /work and /artifacts.
        tmp = ["--bind", str(layout.tmp), "/tmp"] if layout.tmp else ["--size", str(limits.disk_mb << 20), "--tmpfs",
                                                                     "/tmp"]
        cmd += ["--proc", "/proc", "--dev", "/dev", *tmp,
                "--bind", str(layout.workdir), MOUNTS["workdir"],
                "--ro-bind", str(layout.inputs), MOUNTS["inputs"],
                "--bind", str(layout.artifacts), MOUNTS["artifacts"],
                "--remount-ro", "/",  # the sandbox's own root tmpfs; /work, /artifacts, /tmp stay writable
                "--chdir", MOUNTS["workdir"], "--clearenv", "--uid", "65534", "--gid", "65534"]
        if limits.gpu:
            for dev in gpu_nodes(limits.gpu_device):
                cmd += ["--dev-bind", dev, dev]
        for key, value in env.items():
            cmd += ["--setenv", key, value]
        return cmd

    def _confine(self, limits: Limits, uid: int | None) -> tuple[CgroupAccount | None, Callable[[], None]]:
        """The run's cgroup (root only) and the preexec hook that joins it, sets the
        rlimits and drops to ``uid``: the same for a direct start and a spare."""
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
        return cgroup, _rlimits(limits, nproc, address_space=cgroup is None, cgroup=cgroup, uid=uid)

    def _running(self, proc: subprocess.Popen, cgroup: CgroupAccount | None) -> _Running:
        running = _Running(proc, self.kind, cgroup=cgroup)
        # Without a cgroup: bwrap does not reap the sandboxed process itself, so its
        # rusage misses the code that ran; report nothing rather than a wrong figure.
        running.unmeasured = cgroup is None
        return running

    def _spawn(self, argv, layout, limits, env, stdin, stdout, stderr, uid) -> _Running:
        cmd = [self.bwrap, *self._options(layout, limits, env), "--", *argv]
        cgroup, limit = self._confine(limits, uid)
        proc = subprocess.Popen(cmd, stdin=stdin, stdout=stdout, stderr=stderr, env={"PATH": "/usr/bin:/bin"},
                                start_new_session=True, preexec_fn=limit)
        return self._running(proc, cgroup)


    # processes started ahead (bwrap_spare.py) ------------------------------------------------

    def _spare_key(self, limits: Limits) -> tuple:
        return (limits, os.geteuid())

    def _take_spare(self, limits: Limits) -> Spare | None:
        return self._spares.take(self._spare_key(limits))

    def _refill(self, limits: Limits) -> None:
        self._spares.refill(self._spare_key(limits))

    def _start_spare(self, key: tuple) -> Spare:
        uid = self._sandbox_uid()
        cgroup, limit = self._confine(key[0], uid)
        return start_spare(self.bwrap, key, uid, cgroup, limit)

    def _launch_spare(self, spare, argv, layout, limits, env) -> _Running:
        spare.launch(self._options(layout, limits, env), argv)
        self.spare_runs += 1
        return self._running(spare.proc, spare.cgroup)

    def spare_ready(self, limits: Limits) -> bool:
        return self._spares.ready(self._spare_key(limits))

    def close(self) -> None:
        """End the process kept ready for the next run (also done at exit)."""
        self._spares.close()
