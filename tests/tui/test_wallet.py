"""The wallet screen: balances against what each wallet will pay, funding the short one (a
real deposit on the simulated network), an invoice of the coordinator's node with a QR code
that draws the code's modules, and the admin route that serves it when attached."""

from __future__ import annotations

import bolt11
import pytest
import segno

from l402tui.config import load_config
from l402tui.coordinator.client import HttpCoordinatorClient
from l402tui.errors import L402TuiError as CoordinatorError
from l402tui.tui.app import L402App
from l402tui.tui.api_source import ApiSource
from l402tui.tui.qr import CELLS, QUIET, qr_matrix, render_qr
from l402tui.tui.screens.wallet import WalletScreen
from l402tui.tui.source import BountyRow, WalletState
from l402tui.tui.wallet import wallet_lines
from tests.tui.conftest import FixedGpu, FixedHost, wait_for
from tests.tui.test_pilot_attach import daemon  # noqa: F401 - the `l402tui serve` fixture

INVOICE = ("lnbcrt10u1p5qzy7zpp5r4m6z0lf6hq0jz7d9u0a6z0a3q0h0xwz6y0cq3kq4e8w0ud6mfsdqqcqzzsxqyz5vqsp5lq0"
           "d0ak9z6q0sx3xz8y0n3f4fkq7m7x0p0rp5ngd4xz7w7uy0m0qq9qyyssq8p5u0h0z5t0h4k6l9v0n3r9z4r3r6f0gp9")


def _bounty(id_, status, mode, left_sats):
    return BountyRow(id_, id_, status, "f1", left_sats * 1000, left_sats * 1000, 0.5, None, None, 0, mode)


def test_the_drawn_code_is_the_codes_modules_two_rows_a_cell():
    text = render_qr(INVOICE).plain.split("\n")
    back = {cell: pair for pair, cell in CELLS.items()}
    rows = []
    for line in text:
        pairs = [back[c] for c in line]
        rows += [[t for t, _ in pairs], [b for _, b in pairs]]
    code = segno.make_qr("LIGHTNING:" + INVOICE.upper(), error="L", boost_error=False)
    expected = [[bool(m) for m in row] for row in code.matrix_iter(scale=1, border=QUIET)]
    assert rows[:len(expected)] == expected == qr_matrix(INVOICE)
    assert code.mode == "alphanumeric"  # upper case: the smaller code wallets accept
    assert len(text[0]) <= 80 and len(text) <= 40  # fits a 160×48 screen with its frame


def test_a_wallet_is_short_by_what_it_will_be_asked_to_pay():
    bounties = [_bounty("b1", "OPEN", "self", 50_000), _bounty("b2", "OPEN", "hold", 90_000),
                _bounty("b3", "CLOSED", "self", 7_000), _bounty("b4", "OPEN", "self", 25_000)]
    coordinator, agent = wallet_lines(WalletState({"coordinator": 60_000_000, "agent": 10_000},
                                                  agent_need_msat=26_000), bounties)
    # Only open self-funded pools are the wallet's to pay (a hold invoice backs the other).
    assert coordinator.need_msat == 75_000_000 and coordinator.short_msat == 15_000_000
    assert "2 open self-funded bounties" in coordinator.why
    assert agent.short_msat == 16_000
    unknown, = wallet_lines(WalletState({"coordinator": None}), bounties)
    assert unknown.short_msat == 0  # not known is not short


@pytest.fixture
def in_process_cfg(tmp_path):
    return load_config().with_overrides({"paths.data_dir": str(tmp_path / "data"), "coordinator.port": 0})


async def test_in_process_the_wallet_screen_funds_the_agent_and_shows_an_invoice_qr(in_process_cfg):
    from l402tui.tui.coordinator_link import open_in_process

    app = L402App(lambda: open_in_process(in_process_cfg), gpu=FixedGpu(False), host=FixedHost(),
                  telemetry_interval_s=3600.0)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_for(pilot, lambda: app.source is not None, "the coordinator", timeout=30)
        await pilot.press("w")
        await wait_for(pilot, lambda: isinstance(app.screen, WalletScreen) and app.screen.state is not None,
                       "the wallet screen")
        screen = app.screen
        state = screen.state
        assert state.backend == "sim" and state.can_deposit and state.hold_window_s > 0
        agent = next(line for line in screen.lines if line.name == "agent")
        assert agent.need_msat == 26_000  # the default prices: a download (21) and a submission (5)
        before = agent.balance_msat or 0
        screen.query_one("#amount").value = "2,500"
        await pilot.click("#fund-agent")
        await wait_for(pilot, lambda: next(line for line in screen.lines if line.name == "agent").balance_msat
                       == before + 2_500_000, "the deposit on the simulated network")
        assert "agent wallet holds" in str(screen.query_one("#wallet-result").render())
        # A bad amount is refused before anything is asked of the node.
        screen.query_one("#amount").value = "-3"
        await pilot.click("#invoice")
        assert "whole number of sats" in str(screen.query_one("#wallet-result").render())
        screen.query_one("#amount").value = "1500"
        button = screen.query_one("#invoice")
        await wait_for(pilot, lambda: not button.has_class("-active"), "the button to take a second press")
        await pilot.click("#invoice")
        await wait_for(pilot, lambda: screen.invoice != "", "the invoice")
        decoded = bolt11.decode(screen.invoice)
        assert decoded.amount_msat == 1_500_000
        qr = str(screen.query_one("#qr").render())
        assert qr.count("\n") >= 20 and set(qr) <= set(CELLS.values()) | {"\n"}
        await pilot.press("escape")
        assert app.screen is app.main_screen


async def test_attached_the_admin_wallet_route_serves_balance_window_and_invoices(daemon):  # noqa: F811
    url, macaroon, _ = daemon
    async with HttpCoordinatorClient(url, macaroon_path=macaroon) as client:
        view = await client.wallet()
        assert view["backend"] == "sim" and isinstance(view["balance_msat"], int) and view["hold_window_s"] > 0
        state = await ApiSource(client, description="attached").wallet_state()
        assert state.balances == {"coordinator": view["balance_msat"]} and state.can_invoice
        assert not state.can_deposit  # minting is not offered over the API
        invoice = await client.wallet_invoice(1500)
        assert bolt11.decode(invoice["bolt11"]).amount_msat == 1_500_000
        for bad in (0, -5, 10**20):
            with pytest.raises(CoordinatorError) as refused:
                await client.wallet_invoice(bad)
            assert refused.value.status == 422
    async with HttpCoordinatorClient(url) as stranger:  # no admin macaroon
        with pytest.raises(CoordinatorError) as refused:
            await stranger.wallet()
        assert refused.value.status == 401
