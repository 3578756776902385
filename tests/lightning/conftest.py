"""Fixtures for the Lightning tests: a ``harness`` per backend under the contract suite.

``sim`` is the embedded network, ``cln`` our cln backend against a fake lightningd, and
``regtest`` the same backend against real lightningd + bitcoind (regtest.py; skipped
when no binaries are found, a failure when L402TUI_REQUIRE_REGTEST=1).
"""

from __future__ import annotations

import os

import pytest

from tests.lightning.harness import SimHarness

BACKENDS = ["sim", "cln", pytest.param("regtest", marks=pytest.mark.regtest)]


@pytest.fixture(scope="session")
def regtest_network():
    from tests.lightning.regtest import RegtestUnavailable, start_network, stop_network

    keep = os.environ.get("L402TUI_REGTEST_KEEP") == "1"
    try:
        net = start_network(keep=keep)
    except RegtestUnavailable as exc:
        if os.environ.get("L402TUI_REQUIRE_REGTEST") == "1":
            pytest.fail(f"L402TUI_REQUIRE_REGTEST=1 but {exc}")
        pytest.skip(str(exc))
    try:
        yield net
    finally:
        stop_network(net, keep=keep)


@pytest.fixture(params=BACKENDS)
async def harness(request, tmp_path):
    if request.param == "sim":
        h = await SimHarness(tmp_path / "simnet.sqlite").setup()
    elif request.param == "cln":
        from tests.lightning.cln_harness import ClnHarness

        h = await ClnHarness(tmp_path).setup()
    else:
        from tests.lightning.regtest_harness import RegtestHarness

        h = await RegtestHarness(request.getfixturevalue("regtest_network")).setup()
    try:
        yield h
    finally:
        await h.close()
