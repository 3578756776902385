"""The docker runner: throw-away hardened containers from a local image, never pulled."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import uuid

from l402tui.evaluation.cgroups import CgroupAccount
from l402tui.evaluation.run_process import MEMORY_KILLED, RunOutcome, _Running, file_size_bytes, next_uid
from l402tui.evaluation.sandbox import MOUNTS, Sandbox, SandboxUnavailable


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
        return next_uid() if os.geteuid() == 0 else None

    def _spawn(self, argv, layout, limits, env, stdin, stdout, stderr, uid) -> _Running:
        name = f"l402tui-eval-{uuid.uuid4().hex[:12]}"
        cgroup = CgroupAccount(f"l402tui-{name}")
        cmd = [self.docker, "run", "--name", name, "--pull", "never", "--network", "none",
               "--memory", f"{limits.memory_mb}m", "--memory-swap", f"{limits.memory_mb}m",
               "--cpus", f"{limits.cpus:g}", "--pids-limit", str(limits.pids),
               # /tmp, /work and /artifacts share the run's disk limit (run_disk.py); without a
               # host dir for /tmp, a tmpfs of that size.
               "--read-only", *(["-v", f"{layout.tmp}:/tmp:rw"] if layout.tmp else
                                ["--tmpfs", f"/tmp:rw,nosuid,nodev,size={limits.disk_mb}m"]),
               "--user", f"{uid or 65534}:{uid or 65534}", "--cap-drop", "ALL",
               "--security-opt", "no-new-privileges", "--ulimit", f"fsize={file_size_bytes(limits)}",
               "--ulimit", "core=0", "--cgroup-parent", f"/{cgroup.name}",
               "-v", f"{layout.workdir}:{MOUNTS['workdir']}:rw",
               "-v", f"{layout.inputs}:{MOUNTS['inputs']}:ro",
               "-v", f"{layout.artifacts}:{MOUNTS['artifacts']}:rw",
               "-w", MOUNTS["workdir"]]
        if limits.cpuset:
            cmd += ["--cpuset-cpus", ",".join(map(str, limits.cpuset))]
        if limits.gpu:
            # One whole GPU per slot, by UUID; without a slot (an agent's own run) all of them.
            device = limits.gpu_device
            cmd += ["--gpus", f"device={device.visible_id}" if device is not None else "all"]
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
            # Through the engine's socket when it answers (ms; a disk filling up waits on it).
            api = _engine()
            if api is not None:
                try:
                    api.kill(name)
                    return
                except Exception:  # not started yet, or gone: the CLI says the same or does it
                    pass
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
        parts = _inspect_and_remove(self.docker, self.name)
        outcome.cpu_s, outcome.peak_rss_mb = self.parent_cgroup.read_and_remove()
        if len(parts) != 4:
            outcome.killed_reason = "the container could not be started (is the image present?)"
            outcome.exit_code = outcome.exit_code or 125
            return outcome
        outcome.exit_code = int(parts[0])
        started, finished = _docker_time(parts[2]), _docker_time(parts[3])
        if started and finished and finished >= started:
            outcome.wall_s = finished - started  # the engine's clock, without container start-up
        if parts[1] == "true":
            outcome.killed_reason, outcome.memory_exceeded = MEMORY_KILLED, True
        elif outcome.exit_code in (124, 137) and outcome.wall_s >= self.time_limit_s * 0.98:
            outcome.timed_out = True  # `timeout` inside the container killed it (it exits 124)
        return outcome


_api = None


def _engine():
    """The engine's API over its socket (the SDK's low-level client), or None: two
    HTTP calls cost a few ms where two more `docker` CLI processes cost ~100 ms."""
    global _api
    if _api is None:
        try:
            import docker

            _api = docker.APIClient(base_url=os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock"),
                                    timeout=30)
        except Exception:  # no SDK or no socket: the CLI still works
            _api = False
    return _api or None


def _inspect_and_remove(docker_cli: str, name: str) -> list[str]:
    """[exit code, OOMKilled, StartedAt, FinishedAt] of a finished container, then remove it."""
    api = _engine()
    if api is not None:
        try:
            state = api.inspect_container(name)["State"]
            api.remove_container(name, force=True)
            return [str(state["ExitCode"]), str(state["OOMKilled"]).lower(), state["StartedAt"], state["FinishedAt"]]
        except Exception:  # the CLI below gives the same answer, or says the container never started
            pass
    inspect = subprocess.run([docker_cli, "inspect", "--format",
                              "{{.State.ExitCode}} {{.State.OOMKilled}} {{.State.StartedAt}} {{.State.FinishedAt}}",
                              name], capture_output=True, text=True, timeout=30)
    subprocess.run([docker_cli, "rm", "-f", name], capture_output=True, timeout=30)
    return inspect.stdout.split() if inspect.returncode == 0 else []


def _docker_time(text: str) -> float | None:
    # RFC 3339 with nanoseconds; Python parses at most microseconds.
    head, _, frac = text.rstrip("Z").partition(".")
    try:
        base = dt.datetime.fromisoformat(head).replace(tzinfo=dt.timezone.utc)
    except ValueError:
        return None
    return base.timestamp() + (float("0." + frac) if frac.isdigit() else 0.0)
