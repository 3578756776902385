"""Fixtures for the sample-bounty tests: one copy of each bounty per module."""

from __future__ import annotations

import pytest

from tests.samples.contract import copy_bounty


@pytest.fixture(scope="module")
def bounty(request, tmp_path_factory):
    """The module's sample bounty (module attribute BOUNTY), copied to a temp dir."""
    name = request.module.BOUNTY
    return copy_bounty(name, tmp_path_factory.mktemp(name) / name)
