"""The L402 interop tests reuse the coordinator fixtures (sim network, service, loopback server);
the token tests use a bare database."""

import pytest

from l402tui.store import Store
from tests.coordinator.conftest import bounty_dir, cfg, coordinator, net, server  # noqa: F401


@pytest.fixture
async def store(tmp_path):
    """A bare coordinator database in a folder of its own (the token master key lives beside it)."""
    s = await Store.open(tmp_path / "data" / "db.sqlite")
    yield s
    await s.close()
