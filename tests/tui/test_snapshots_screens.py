"""Screenshots of the screens issue 15 added: bounty detail with its charts, the wallet
(short, and with an invoice's QR code), the demo's story, and the 80×24 layout with the
agent panel over the tables."""

from __future__ import annotations

import pytest

from tests.tui.conftest import RecordedAgent, wait_for
from tests.tui.test_snapshots import BIG, SMALL, THEMES, _ready
from tests.tui.test_wallet import INVOICE


async def _open_bounty(pilot, bounty_id="b_logparse01"):
    table = pilot.app.main_screen.query_one("#bounties-table")
    table.move_cursor(row=[r.id for r in table.records].index(bounty_id))
    await pilot.press("enter")
    await wait_for(pilot, lambda: type(pilot.app.screen).__name__ == "BountyDetailScreen", "the bounty detail")


@pytest.mark.parametrize("theme", THEMES)
def test_bounty_detail_with_charts(snap_compare, make_app, seeded_db, theme):
    assert snap_compare(make_app(seeded_db, theme=theme), terminal_size=(160, 48), run_before=_ready(_open_bounty))


@pytest.mark.parametrize("theme", THEMES)
def test_wallet_screen_short(snap_compare, make_app, seeded_db, theme):
    async def wallet(pilot):
        await pilot.press("w")
        await wait_for(pilot, lambda: getattr(pilot.app.screen, "state", None) is not None, "the balances")

    assert snap_compare(make_app(seeded_db, theme=theme, acting=True, balance_msat=2_000_000), terminal_size=BIG,
                        run_before=_ready(wallet))


def test_wallet_screen_with_an_invoice_qr(snap_compare, make_app, seeded_db):
    async def invoice(pilot):
        await pilot.press("w")
        await wait_for(pilot, lambda: getattr(pilot.app.screen, "state", None) is not None, "the balances")
        pilot.app.screen.show_invoice(INVOICE, 1_000_000)

    assert snap_compare(make_app(seeded_db, acting=True), terminal_size=(120, 60), run_before=_ready(invoice))


def test_small_terminal_with_the_agent_panel(snap_compare, make_app, seeded_db):
    async def agent(pilot):
        await pilot.press("a")

    assert snap_compare(make_app(seeded_db, agent=RecordedAgent()), terminal_size=SMALL, run_before=_ready(agent))


@pytest.mark.parametrize("size", [(160, 48), (200, 60)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_bounties_table_uses_the_width(snap_compare, make_app, seeded_db, size):
    # 80×24 and 120×40 are test_small_terminal and test_bounties_pane.
    assert snap_compare(make_app(seeded_db), terminal_size=size, run_before=_ready())
