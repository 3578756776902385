"""Fixtures of the payouts tests; the store + sim world is in payouts_world.py."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # test modules import payouts_world by name

from payouts_world import World  # noqa: E402


@pytest.fixture
async def world(tmp_path):
    w = await World.open(tmp_path)
    try:
        yield w
    finally:
        await w.close()
