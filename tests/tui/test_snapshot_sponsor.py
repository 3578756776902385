"""Screenshot of the TUI attached as a sponsor (`l402tui --attach URL --sponsor-macaroon FILE`) to a
real coordinator serving on 127.0.0.1 in this process: two sponsors and the operator have bounties
on it, and only the attached sponsor's is on screen (issue 17).

A live coordinator draws its ids and times at random and from the wall clock; the test injects
both (monkeypatch) so the picture is the same on every run, and serves on a fixed port because the
status line shows the URL.  The pilot test (test_pilot_sponsor.py, tests/coordinator/
test_sponsor_tui.py) covers the same view without a picture."""

from __future__ import annotations

import asyncio
import errno
import itertools
import secrets
import time
import types
from pathlib import Path

import pytest

from l402tui.config import load_config
from l402tui.tui.loop_thread import LoopThread
from tests.coordinator.conftest import make_bounty
from tests.tui.conftest import FixedGpu, FixedHost, wait_for
from tests.tui.seed import NOW

# Outside the kernel's ephemeral range (32768-60999 here): only an explicit bind takes it, and
# only another run of this test binds it (then the bind waits for that run to finish).
PORT = 18417
BIND_WAIT_S = 120.0


def _named(folder: Path, name: str) -> Path:
    toml = folder / "bounty.toml"
    toml.write_text(toml.read_text().replace('name = "Tiny sum"', f'name = "{name}"'))
    return folder


class Coordinator:
    """The real coordinator, its HTTP API on 127.0.0.1:PORT, on a loop of its own thread (the
    snapshot runs the app with ``App.run``, which blocks this thread)."""

    def __init__(self, data_dir: Path):
        self.cfg = load_config(data_dir / "no-config.toml", env={}).with_overrides({"paths.data_dir": str(data_dir)})
        self.thread = LoopThread("coordinator")
        self.url = f"http://127.0.0.1:{PORT}/"

    def call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.thread.loop).result(timeout=180)

    async def start(self) -> None:
        from aiohttp import web

        from l402tui.coordinator.app import create_app
        from l402tui.coordinator.service import Coordinator as Service
        from l402tui.lightning.sim import SimNetwork
        from l402tui.store import Store

        self.net = SimNetwork.from_config(self.cfg)
        for node, msat in (("coordinator", 0), ("sponsor", 10_000_000_000)):
            await self.net.create_node(node, msat, exist_ok=True)
        self.store = await Store.open(self.cfg.db_path)
        self.service = Service(self.cfg, self.store, self.net.node("coordinator"))
        self.service.tick_s = 0.05
        await self.service.start()
        self.runner = web.AppRunner(create_app(self.service, manage_lifecycle=False))
        await self.runner.setup()
        end = asyncio.get_running_loop().time() + BIND_WAIT_S
        while True:
            try:
                await web.TCPSite(self.runner, "127.0.0.1", PORT).start()
                return
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE or asyncio.get_running_loop().time() > end:
                    raise
                await asyncio.sleep(0.5)

    async def sponsor_posts(self, sponsor: str, folder: Path) -> tuple[str, str]:
        """A sponsor the operator invited posts ``folder`` over HTTP: (its credential, the bounty's id)."""
        from l402tui.coordinator.sponsor_client import SponsorClient
        from l402tui.l402.sponsor import SponsorAuthority

        minted = await SponsorAuthority(self.store).invite(name=sponsor, valid_until=int(time.time()) + 3600)
        async with SponsorClient(self.url, credential=minted.macaroon_b64) as client:
            posted = await client.create_bounty(folder)
        return minted.macaroon_b64, posted["bounty"]["id"]

    async def stop(self) -> None:
        await self.runner.cleanup()
        await self.service.stop()
        await self.store.close()
        await self.net.close()


@pytest.fixture
def frozen(monkeypatch):
    """Every wall-clock read is NOW; bounty and sponsor ids count up instead of being random."""
    from l402tui.coordinator import publishing
    from l402tui.l402 import sponsor

    monkeypatch.setattr(time, "time", lambda: NOW)
    bounty_n = itertools.count(1)
    monkeypatch.setattr(publishing, "_new_bounty_id", lambda name: f"{name.split()[0].lower()}-{next(bounty_n):06x}")
    sponsor_n = itertools.count(1)
    monkeypatch.setattr(sponsor, "secrets", types.SimpleNamespace(
        token_hex=lambda n: f"{next(sponsor_n):0{2 * n}x}", token_bytes=secrets.token_bytes))


def test_attached_sponsor_sees_only_its_bounties(snap_compare, frozen, tmp_path):
    from l402tui.tui.app import L402App
    from l402tui.tui.launch import source_factory

    coordinator = Coordinator(tmp_path / "coordinator")
    try:
        coordinator.call(coordinator.start())
        _, theirs = coordinator.call(coordinator.sponsor_posts(
            "globex", _named(make_bounty(tmp_path / "globex"), "Globex sum, faster")))
        mine_credential, mine = coordinator.call(coordinator.sponsor_posts(
            "acme", _named(make_bounty(tmp_path / "acme"), "Acme sum, exact")))
        operators = coordinator.call(coordinator.service.create_bounty(
            _named(make_bounty(tmp_path / "ops"), "Operator sum"), self_funded=True))["bounty"]["id"]
        credential = tmp_path / "acme.macaroon"
        credential.write_text(mine_credential + "\n")

        cfg = load_config(tmp_path / "none.toml", env={}).with_overrides({"paths.data_dir": str(tmp_path / "tui")})
        app = L402App(source_factory(cfg, coordinator.url, None, sponsor_macaroon=credential),
                      gpu=FixedGpu(False), host=FixedHost(), clock=lambda: NOW, export_dir=tmp_path / "exports",
                      telemetry_interval_s=3600.0, reload_delay_s=0.05, log_poll_s=0.05)
        shown: dict[str, set[str]] = {}

        async def attached(pilot) -> None:
            bounties = lambda: {r.id for r in app.main_screen.query_one("#bounties-table").records}  # noqa: E731
            await wait_for(pilot, lambda: bounties(), "the sponsor's bounties", timeout=30)
            log = app.main_screen.query_one("#eval-log")
            await wait_for(pilot, lambda: log.evaluation is not None, "the baseline in the log pane")
            await pilot.pause(0.3)
            shown["bounties"] = bounties()

        assert snap_compare(app, terminal_size=(120, 30), run_before=attached)
        assert shown["bounties"] == {mine}, (shown, mine, theirs, operators)
    finally:
        try:
            coordinator.call(coordinator.stop())
        finally:
            coordinator.thread.stop()
