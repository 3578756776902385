"""Shared fixtures.  Area-specific fixtures live in tests/<area>/conftest.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_bounties"


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path_factory, monkeypatch):
    """Never touch the user's real config or data: point XDG dirs at a temp folder."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    for name in list(os.environ):
        if name.startswith("L402TUI_"):
            monkeypatch.delenv(name)
    # Verdicts show at once in tests (the time classes have their own tests), here and in
    # the coordinators tests start as subprocesses.
    from l402tui import config

    monkeypatch.setitem(config.DEFAULTS["coordinator"], "verdict_quantum_s", 0.0)
    monkeypatch.setenv("L402TUI_COORDINATOR__VERDICT_QUANTUM_S", "0")
    yield
