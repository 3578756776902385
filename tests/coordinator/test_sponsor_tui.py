"""`l402tui --attach URL --sponsor-macaroon FILE`: the TUI, attached with a sponsor credential,
shows that sponsor's bounties and nothing of another sponsor's or the operator's (a Textual
pilot against a real loopback server)."""

from __future__ import annotations

import time

import pytest

from l402tui.config import load_config
from l402tui.coordinator.sponsor_client import SponsorClient
from l402tui.l402.sponsor import SponsorAuthority
from l402tui.tui.app import L402App
from l402tui.tui.launch import LaunchError, source_factory
from tests.coordinator.conftest import make_bounty, url
from tests.tui.conftest import FixedGpu, FixedHost, wait_for


async def _sponsor_with_bounty(coordinator, server, tmp_path, name: str) -> tuple[str, str]:
    minted = await SponsorAuthority(coordinator.store).invite(name=name, valid_until=int(time.time()) + 3600)
    async with SponsorClient(url(server, "/"), credential=minted.macaroon_b64) as client:
        bounty_id = (await client.create_bounty(make_bounty(tmp_path / name)))["bounty"]["id"]
    return minted.macaroon_b64, bounty_id


async def test_the_attached_sponsor_tui_shows_only_its_bounties(server, coordinator, tmp_path):
    mine, my_bounty = await _sponsor_with_bounty(coordinator, server, tmp_path, "mine")
    _, their_bounty = await _sponsor_with_bounty(coordinator, server, tmp_path, "theirs")
    operators = (await coordinator.create_bounty(make_bounty(tmp_path / "ops"), self_funded=True))["bounty"]["id"]
    credential = tmp_path / "sponsor.macaroon"
    credential.write_text(mine + "\n")

    cfg = load_config(tmp_path / "none.toml", env={}).with_overrides({"paths.data_dir": str(tmp_path / "client")})
    app = L402App(source_factory(cfg, url(server, "/"), None, sponsor_macaroon=credential), gpu=FixedGpu(False),
                  host=FixedHost(), export_dir=tmp_path / "exports", reload_delay_s=0.05, log_poll_s=0.05)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.source is not None, "attaching", timeout=20)
        rows = lambda: {r.id for r in app.main_screen.query_one("#bounties-table").records}  # noqa: E731
        await wait_for(pilot, lambda: my_bounty in rows(), "the sponsor's bounty", timeout=20)
        assert rows() == {my_bounty}
        assert their_bounty not in rows() and operators not in rows()
        assert app.source.description.startswith("sponsor sp_")
        assert getattr(app.source, "http_url", None) is None  # no agent panel run against the coordinator


def test_a_sponsor_macaroon_needs_attach(tmp_path):
    cfg = load_config(tmp_path / "none.toml", env={}).with_overrides({"paths.data_dir": str(tmp_path)})
    with pytest.raises(LaunchError, match="needs --attach"):
        source_factory(cfg, None, None, sponsor_macaroon=tmp_path / "x")


def test_sponsor_invite_writes_a_private_credential_that_opens_sponsor_routes(tmp_path):
    import asyncio
    import os
    import stat

    from click.testing import CliRunner

    from l402tui.cli import main
    from l402tui.store import Store

    out = tmp_path / "acme.macaroon"
    args = ["--data-dir", str(tmp_path / "data"), "sponsor", "invite", "--name", "acme", "--posts", "2",
            "--out", str(out)]
    result = CliRunner().invoke(main, args, env={"L402TUI_CONFIG": str(tmp_path / "none.toml")})
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    again = CliRunner().invoke(main, args, env={"L402TUI_CONFIG": str(tmp_path / "none.toml")})
    assert again.exit_code != 0 and "never overwritten" in again.output

    async def check():
        store = await Store.open(tmp_path / "data" / "l402tui.sqlite")
        try:
            cred = await SponsorAuthority(store).verify(f"Bearer {out.read_text().strip()}")
            name = await store.scalar("SELECT name FROM sponsors WHERE id = ?", (cred.sponsor_id,))
            return cred, name
        finally:
            await store.close()

    cred, name = asyncio.run(check())
    assert name == "acme" and cred.capabilities == {"post", "read", "review", "manage"}
    listed = CliRunner().invoke(main, ["--data-dir", str(tmp_path / "data"), "sponsor", "list"],
                                env={"L402TUI_CONFIG": str(tmp_path / "none.toml")})
    assert cred.sponsor_id in listed.output and "invite" in listed.output
