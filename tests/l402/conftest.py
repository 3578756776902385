"""The L402 interop tests reuse the coordinator fixtures (sim network, service, loopback server)."""

from tests.coordinator.conftest import bounty_dir, cfg, coordinator, net, server  # noqa: F401
