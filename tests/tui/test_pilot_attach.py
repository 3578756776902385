"""`l402tui --attach URL`: the same UI against a running `l402tui serve` (a real
subprocess on loopback), through the admin API and the event stream."""

from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner

from l402tui.cli import main
from l402tui.config import load_config
from l402tui.tui.app import L402App
from l402tui.tui.launch import source_factory
from tests.agent.agent_fixtures import make_bounty
from tests.serve_process import start_serve
from tests.tui.conftest import FixedGpu, FixedHost, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def daemon(tmp_path):
    data = tmp_path / "daemon"
    proc, url, macaroon = start_serve(data, env={"L402TUI_LIGHTNING__SIM_BLOCK_INTERVAL_S": "120"})
    yield url, macaroon, data
    proc.terminate()
    proc.wait(timeout=20)


async def test_attached_ui_shows_the_daemons_bounties_and_follows_its_events(daemon, tmp_path):
    url, macaroon, data = daemon
    cfg = load_config().with_overrides({"paths.data_dir": str(tmp_path / "client")})
    app = L402App(source_factory(cfg, url, macaroon), gpu=FixedGpu(False), host=FixedHost(),
                  export_dir=tmp_path / "exports", reload_delay_s=0.05)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.source is not None, "attaching", timeout=20)
        assert app.source.description == f"attached · {url}"
        # Self-funding needs sats in the daemon's wallet: the dialog checks (GET /api/v1/admin/wallet).
        deposit = subprocess.run([sys.executable, "-m", "l402tui.cli", "--data-dir", str(data), "wallet", "deposit",
                                  "coordinator", "100000"], capture_output=True, text=True, timeout=60)
        assert deposit.returncode == 0, deposit.stderr
        # A sponsor action through the admin API: create (self-funded), seen through the event stream.
        await pilot.press("c")
        app.screen.query_one("#path").value = str(make_bounty(tmp_path / "guess"))
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.screen.report is not None, "validation")
        await pilot.click("#create-self")
        rows = lambda: app.main_screen.query_one("#bounties-table").records  # noqa: E731
        await wait_for(pilot, lambda: any(b.name == "guess" and b.status == "OPEN" for b in rows()),
                       "the daemon's new bounty", timeout=60)
        assert "bounty" in app.main_screen.query_one("#status").last_event
        # What lives beside the daemon's database comes over the admin API too: its evaluations.
        pane = app.main_screen.query_one("#eval-log")
        await wait_for(pilot, lambda: pane.evaluation is not None, "the daemon's baseline evaluation")
        assert pane.logs_here and pane.evaluation.kind == "baseline" and pane.evaluation.bounty_id in {
            b.id for b in rows()}


def test_attach_refuses_a_bad_url_or_a_missing_macaroon_before_opening(tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["--attach", "localhost:8402", "tui"])
    assert result.exit_code == 1 and "give the daemon's URL, e.g. http://127.0.0.1:8402" in result.output
    result = runner.invoke(main, ["--attach", "http://127.0.0.1:9", "--admin-macaroon", str(tmp_path / "nope")])
    assert result.exit_code == 1 and "no such file" in result.output


def test_an_unknown_keymap_id_stops_the_tui_with_the_known_ids(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text('[tui]\nkeymap = { toggle_agnet = "ctrl+a" }\n')
    result = CliRunner().invoke(main, ["--config", str(config), "tui", "--read-only"])
    assert result.exit_code == 1
    assert "unknown binding id(s) 'toggle_agnet'" in result.output and "toggle_agent" in result.output


async def test_beside_a_running_daemon_the_local_tui_only_looks(tmp_path):
    import socket

    from l402tui.tui.coordinator_link import open_in_process
    from l402tui.tui.store_source import StoreSource

    with socket.socket() as daemon_port:  # stands where `l402tui serve` listens
        daemon_port.bind(("127.0.0.1", 0))
        daemon_port.listen()
        port = daemon_port.getsockname()[1]
        cfg = load_config().with_overrides({"paths.data_dir": str(tmp_path / "data"), "coordinator.port": port})
        source = await open_in_process(cfg)
    try:
        assert isinstance(source, StoreSource) and not source.can_act
        assert f"already listens on 127.0.0.1:{port}" in source.description
        assert f"--attach http://127.0.0.1:{port}" in source.description
    finally:
        await source.close()
