"""Which sandbox evaluations use: the operator's choice, or the best one available.

``auto`` prefers docker (an engine answers and the image is already local), then
bubblewrap, then the unisolated local runner.  :func:`sandbox_status` reports every
runner with the reason it can or cannot be used, for ``l402tui sandbox status``
and the TUI.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from typing import Any

from l402tui.evaluation.docker_sandbox import DockerSandbox
from l402tui.evaluation.sandbox import (SANDBOX_KINDS, BwrapSandbox, LocalSandbox, RunnerStatus, Sandbox,
                                        SandboxUnavailable)

DEFAULT_IMAGE = "l402tui-base:bookworm"


def docker_status(image: str) -> RunnerStatus:
    """Engine and image check through the docker SDK; never pulls."""
    if not shutil.which("docker"):
        return RunnerStatus("docker", False, "docker is not installed; run `l402tui sandbox setup`")
    try:
        import docker  # the SDK costs ~120 ms to import: only when asked
        from docker.errors import DockerException, ImageNotFound

        client = docker.from_env(timeout=5)
    except Exception as exc:  # the SDK raises several kinds when no engine answers
        return RunnerStatus("docker", False, f"no docker engine answers ({exc.__class__.__name__}); "
                            "start dockerd or run `l402tui sandbox setup`")
    try:
        client.ping()
        version = client.version().get("Version", "?")
        try:
            client.images.get(image)
        except ImageNotFound:
            return RunnerStatus("docker", False, f"engine {version} answers but image {image} is missing; "
                                "run `l402tui sandbox setup` (it builds the image offline)",
                                extra={"engine": version})
        return RunnerStatus("docker", True, f"engine {version}, image {image}", extra={"engine": version,
                                                                                      "image": image})
    except DockerException as exc:
        return RunnerStatus("docker", False, f"no docker engine answers ({exc}); start dockerd or run "
                            "`l402tui sandbox setup`")
    finally:
        client.close()


def bwrap_status() -> RunnerStatus:
    path = shutil.which("bwrap")
    if not path:
        return RunnerStatus("bwrap", False, "bubblewrap is not installed: apt-get install bubblewrap")
    # Installed is not enough: user namespaces may be disabled on this kernel.
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run([*BwrapSandbox(path).base_args(), "--bind", tmp, "/w", "--", "/usr/bin/env", "true"],
                              capture_output=True, text=True, timeout=10)
    if proc.returncode != 0:
        return RunnerStatus("bwrap", False, f"bubblewrap cannot create namespaces here: {proc.stderr.strip()[:200]}")
    how = "cgroup limits" if os.geteuid() == 0 else "rlimits only (not root: no cgroup memory/pids limits)"
    return RunnerStatus("bwrap", True, f"{path}, {how}")


def local_status(allow_unsandboxed: bool) -> RunnerStatus:
    detail = ("NO ISOLATION: untrusted submissions run here because evaluation.allow_unsandboxed = true"
              if allow_unsandboxed else
              "no isolation; runs only the sponsor's own code (untrusted submissions are refused)")
    return RunnerStatus("local", True, detail, isolated=False)


def sandbox_status(settings: dict[str, Any]) -> tuple[list[RunnerStatus], str]:
    """Every runner's status and the kind ``pick_sandbox`` would choose."""
    statuses = [docker_status(settings.get("docker_image") or DEFAULT_IMAGE), bwrap_status(),
                local_status(bool(settings.get("allow_unsandboxed")))]
    wanted = settings.get("sandbox", "auto")
    if wanted == "auto":
        chosen = next(s.kind for s in statuses if s.available)
    else:
        chosen = wanted
    return statuses, chosen


def pick_sandbox(settings: dict[str, Any], *, image: str | None = None) -> Sandbox:
    """The sandbox for ``settings`` (the config's ``evaluation`` section).

    An explicit choice that cannot work raises SandboxUnavailable saying why, rather
    than silently falling back to something weaker.
    """
    wanted = settings.get("sandbox", "auto")
    image = image or settings.get("docker_image") or DEFAULT_IMAGE
    if wanted not in ("auto", *SANDBOX_KINDS):
        raise SandboxUnavailable(f"evaluation.sandbox = {wanted!r} is not a runner; use auto, "
                                 + ", ".join(SANDBOX_KINDS))
    if wanted in ("auto", "docker"):
        status = docker_status(image)
        if status.available:
            return DockerSandbox(image)
        if wanted == "docker":
            raise SandboxUnavailable(status.detail)
    if wanted in ("auto", "bwrap"):
        status = bwrap_status()
        if status.available:
            return BwrapSandbox()
        if wanted == "bwrap":
            raise SandboxUnavailable(status.detail)
    return LocalSandbox()


def make_sandbox(kind: str, image: str = DEFAULT_IMAGE) -> Sandbox:
    """A runner by name, checked (for tests, benchmarks and `bounty audit --sandbox`)."""
    return pick_sandbox({"sandbox": kind, "docker_image": image})


def image_for(spec_image: str | None, settings: dict[str, Any]) -> str:
    return spec_image or settings.get("docker_image") or DEFAULT_IMAGE


__all__ = ["sandbox_status", "pick_sandbox", "make_sandbox", "docker_status", "bwrap_status"]
