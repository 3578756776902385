"""Fixtures of the agent tests; the tiny bounty itself is in agent_fixtures.py."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # test modules import agent_fixtures by name

from agent_fixtures import make_bounty  # noqa: E402
from l402tui.bounty import load_bounty
from l402tui.bounty.package import build_package


@pytest.fixture
def bounty_dir(tmp_path) -> Path:
    return make_bounty(tmp_path / "bounty")


@pytest.fixture
def package(bounty_dir) -> bytes:
    return build_package(load_bounty(bounty_dir)).data

