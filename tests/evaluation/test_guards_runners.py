"""The sandbox tests' own guard: a missing runner skips locally and fails in CI
(``L402TUI_REQUIRE_SANDBOXES=1``, set by .ci/run), naming what is missing."""

from __future__ import annotations

import pytest
import runners_fixture
from l402tui.evaluation.sandbox import RunnerStatus


@pytest.fixture
def no_bwrap(monkeypatch):
    runners_fixture.runner_problem.cache_clear()
    monkeypatch.setattr(runners_fixture, "bwrap_status",
                        lambda: RunnerStatus("bwrap", False, "bwrap not found on PATH", False))
    yield
    runners_fixture.runner_problem.cache_clear()


@pytest.mark.parametrize("required, outcome", [(False, pytest.skip.Exception), (True, pytest.fail.Exception)])
def test_a_missing_sandbox_skips_or_fails_when_required(no_bwrap, monkeypatch, required, outcome):
    monkeypatch.setattr(runners_fixture, "REQUIRED", required)
    with pytest.raises(outcome, match="bwrap sandbox unavailable: bwrap not found on PATH"):
        runners_fixture.make_runner("bwrap")
    assert runners_fixture.make_runner("local").kind == "local"  # nothing to miss
