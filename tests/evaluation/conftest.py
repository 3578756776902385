"""Fixtures for the evaluation tests: runners (skipped with the reason when one
cannot work here) and tiny bounties in temp dirs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from l402tui.bounty import load_bounty

sys.path.insert(0, str(Path(__file__).parent))
import tinybounty  # noqa: E402
from runners_fixture import make_runner, runner_problem  # noqa: E402,F401


ISOLATED = [pytest.param("bwrap", marks=pytest.mark.bwrap), pytest.param("docker", marks=pytest.mark.docker)]
ALL_RUNNERS = [pytest.param("local"), *ISOLATED]


@pytest.fixture(params=ISOLATED)
def isolated(request):
    return make_runner(request.param)


@pytest.fixture(params=ALL_RUNNERS)
def any_runner(request):
    return make_runner(request.param)


@pytest.fixture
def sums(tmp_path):
    return load_bounty(tinybounty.make_sums(tmp_path / "sums"))


@pytest.fixture
def echo(tmp_path):
    return load_bounty(tinybounty.make_echo(tmp_path / "echo"))


@pytest.fixture
def sandbox_tmp():
    """A temp dir the sandbox uid can reach (pytest's tmp_path sits under a 0700 dir)."""
    import shutil
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="l402tui-test-"))
    path.chmod(0o711)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(autouse=True)
def _fast_python(monkeypatch):
    """Trusted scorers run with the caller's PATH; on this machine that starts with
    pyenv shims that cost ~0.3 s per python3 start.  The system python3 is the same
    3.11 and keeps the suite inside its time budget."""
    if Path("/usr/bin/python3").exists():
        monkeypatch.setenv("PATH", "/usr/bin:" + __import__("os").environ.get("PATH", ""))
