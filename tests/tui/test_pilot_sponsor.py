"""Sponsor flows against the real coordinator, in-process, on the simulated network:
create from a folder, fund (the sponsor pays the hold invoice), review a flagged
submission, close — all through keys, as a user would."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from l402tui.config import load_config
from l402tui.store import open_sync
from l402tui.tui.app import L402App
from l402tui.tui.launch import source_factory
from l402tui.tui.screens.confirm import ConfirmScreen
from l402tui.tui.screens.create_bounty import CreateBountyScreen
from l402tui.tui.screens.review import ReviewScreen
from tests.agent.agent_fixtures import make_bounty
from tests.tui.conftest import FixedGpu, FixedHost, wait_for

pytestmark = pytest.mark.slow  # a real coordinator measures the bounty's baseline (a few seconds)


@pytest.fixture
def cfg(tmp_path):
    return load_config().with_overrides({
        "paths.data_dir": str(tmp_path / "data"),
        "coordinator.port": 0,  # any free port: several test runs may share the machine
        # Slow sim blocks so a one-hour bounty fits in the safe hold window of a funding invoice.
        "lightning.sim_block_interval_s": 120.0,
        # The fixture bounty runs this interpreter ({py}), which no isolating sandbox has; a
        # baseline that cannot be measured cancels the bounty, so measure it unsandboxed here.
        "evaluation.sandbox": "local", "evaluation.allow_unsandboxed": True,
    })


def _rows(app, tab):
    return {r.id: r for r in app.main_screen.query_one(f"#{tab}-table").records}


def _select(app, tab, record_id):
    table = app.main_screen.query_one(f"#{tab}-table")
    table.move_cursor(row=[r.id for r in table.records].index(record_id))


async def test_create_fund_review_and_close_through_the_coordinator(cfg, tmp_path):
    folder = make_bounty(tmp_path / "guess")
    app = L402App(source_factory(cfg, None, None), gpu=FixedGpu(False), host=FixedHost(),
                  export_dir=tmp_path / "exports", log_poll_s=0.05, reload_delay_s=0.05)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.source is not None, "the coordinator to start", timeout=30)
        assert app.source.description.startswith("in-process · http://127.0.0.1:")

        # Create: validation first, then the hold-funded bounty.
        await pilot.press("c")
        screen = app.screen
        assert isinstance(screen, CreateBountyScreen)
        screen.query_one("#path").value = str(folder)
        await pilot.press("enter")
        await wait_for(pilot, lambda: screen.report is not None, "validation")
        assert screen.report.ok, screen.report.problems
        await pilot.click("#create")
        await wait_for(pilot, lambda: any(b.name == "guess" for b in _rows(app, "bounties").values()),
                       "the new bounty", timeout=60)
        bounty = next(b for b in _rows(app, "bounties").values() if b.name == "guess")
        assert bounty.status == "AWAITING_FUNDING" and bounty.pool_msat == 10_000_000

        # Fund: the invoice is shown and copied; the sponsor pays it from its own node.
        _select(app, "bounties", bounty.id)
        await pilot.press("f")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the funding invoice")
        invoice = app.clipboard
        assert invoice.startswith("lnbcrt") and invoice == bounty.funding_bolt11
        await pilot.press("enter")
        from l402tui.lightning import make_backend

        sponsor = make_backend(cfg, "sponsor")
        await sponsor.net.create_node("sponsor", 50_000_000, exist_ok=True)
        payment = asyncio.ensure_future(sponsor.pay(invoice))  # held until the coordinator settles or cancels
        await wait_for(pilot, lambda: _rows(app, "bounties")[bounty.id].status == "OPEN",
                       "the bounty to open when the payment is held", timeout=30)
        await wait_for(pilot, lambda: any(r.kind == "funding hold" and r.status == "ACCEPTED" for r in
                                          app.main_screen.query_one("#ledger-table").records),
                       "the held funding payment in the ledger")

        # Review: a submission the anti-gaming checks flagged (written as the evaluator would).
        db = open_sync(cfg.db_path)
        with db.conn:
            now = time.time()
            db["submissions"].insert({"id": "s_flagged", "bounty_id": bounty.id, "status": "FLAGGED",
                                      "diff": "--- a/model.py\n+++ b/model.py\n@@ -1 +1 @@\n-GUESS = 0.5\n"
                                              "+GUESS = 3.0  # read from heldout/a/labels\n",
                                      "claimed_score": 0.0, "reasons": "reads the held-out labels",
                                      "created_at": now, "updated_at": now})
            db["events"].insert({"kind": "submission.status", "subject_id": "s_flagged",
                                 "payload_json": json.dumps({"status": "FLAGGED"}), "created_at": now})
        db.close()
        await wait_for(pilot, lambda: "s_flagged" in _rows(app, "submissions"), "the flagged submission")
        await pilot.press("2")
        _select(app, "submissions", "s_flagged")
        await pilot.press("v")
        await wait_for(pilot, lambda: isinstance(app.screen, ReviewScreen), "the review screen")
        review = app.screen
        await wait_for(pilot, lambda: "heldout/a/labels" in (review.diff_text or ""), "the diff")
        await pilot.click("#gaming")
        await wait_for(pilot, lambda: open_sync(cfg.db_path).execute(
            "SELECT COUNT(*) FROM events WHERE kind = 'stake.sponsor_decision' AND subject_id = 's_flagged'"
        ).fetchone()[0] == 1, "the coordinator to record the sponsor's decision", timeout=20)

        # Close: confirm, then the bounty is CLOSED and the untouched pool goes back (hold cancelled).
        await pilot.press("1")
        _select(app, "bounties", bounty.id)
        await pilot.press("X")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the close question")
        await pilot.click("#close")
        await wait_for(pilot, lambda: _rows(app, "bounties")[bounty.id].status in ("CLOSED", "SETTLED"),
                       "the bounty to close", timeout=30)
        await wait_for(pilot, lambda: any(r.kind == "funding hold" and r.status == "CANCELED" for r in
                                          app.main_screen.query_one("#ledger-table").records),
                       "the funding hold to be cancelled (refunded)", timeout=30)
        payment.cancel()
        await sponsor.close()
