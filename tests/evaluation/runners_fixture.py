"""Sandbox runners for tests, skipped with the reason when one cannot work here.
(A module of its own, not conftest, so test modules can import it by a unique name.)"""

from __future__ import annotations

import functools

import pytest

from l402tui.evaluation.docker_sandbox import DockerSandbox
from l402tui.evaluation.runners import DEFAULT_IMAGE, bwrap_status, docker_status
from l402tui.evaluation.sandbox import BwrapSandbox, LocalSandbox


@functools.cache
def runner_problem(kind: str) -> str | None:
    if kind == "docker":
        status = docker_status(DEFAULT_IMAGE)
    elif kind == "bwrap":
        status = bwrap_status()
    else:
        return None
    return None if status.available else status.detail


def make_runner(kind: str):
    problem = runner_problem(kind)
    if problem:
        pytest.skip(f"{kind} sandbox unavailable: {problem} (scripts/docker-setup.sh sets it up)")
    return {"docker": lambda: DockerSandbox(DEFAULT_IMAGE), "bwrap": BwrapSandbox, "local": LocalSandbox}[kind]()


