"""Sandbox runners for tests, skipped with the reason when one cannot work here, and failed
instead when ``L402TUI_REQUIRE_SANDBOXES=1`` (CI: a green run must have run them).
(A module of its own, not conftest, so test modules can import it by a unique name.)"""

from __future__ import annotations

import functools
import os

import pytest

from l402tui.evaluation.docker_sandbox import DockerSandbox
from l402tui.evaluation.runners import DEFAULT_IMAGE, bwrap_status, docker_status
from l402tui.evaluation.sandbox import BwrapSandbox, LocalSandbox


# Read once at import: tests/conftest.py removes every L402TUI_* variable around each test.
REQUIRED = os.environ.get("L402TUI_REQUIRE_SANDBOXES") == "1"


@functools.cache
def runner_problem(kind: str) -> str | None:
    if kind == "docker":
        status = docker_status(DEFAULT_IMAGE)
    elif kind == "bwrap":
        status = bwrap_status()
    else:
        return None
    return None if status.available else status.detail


def require_runner(kind: str) -> None:
    """Skip (or fail, when sandboxes are required) unless the ``kind`` runner works here."""
    problem = runner_problem(kind)
    if not problem:
        return
    message = f"{kind} sandbox unavailable: {problem} (scripts/docker-setup.sh sets it up)"
    if REQUIRED:
        pytest.fail(f"L402TUI_REQUIRE_SANDBOXES=1 but the {message}", pytrace=False)
    pytest.skip(message)


def make_runner(kind: str):
    require_runner(kind)
    return {"docker": lambda: DockerSandbox(DEFAULT_IMAGE), "bwrap": BwrapSandbox, "local": LocalSandbox}[kind]()


