"""Fixtures for the Lightning tests: a ``harness`` per backend under the contract suite."""

from __future__ import annotations

import pytest

from tests.lightning.harness import SimHarness

BACKENDS = ["sim", "cln"]


@pytest.fixture(params=BACKENDS)
async def harness(request, tmp_path):
    if request.param == "sim":
        h = await SimHarness(tmp_path / "simnet.sqlite").setup()
    else:
        from tests.lightning.cln_harness import ClnHarness

        h = await ClnHarness(tmp_path).setup()
    try:
        yield h
    finally:
        await h.close()
