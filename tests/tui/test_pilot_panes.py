"""Driving the app like a user over a seeded database (real SQLite, real workers)."""

from __future__ import annotations

import csv
import json

from l402tui.store import open_sync
from l402tui.tui.widgets.eval_log_pane import EvalLogPane
from tests.tui.conftest import loaded, wait_for
from tests.tui.seed import NOW


def _table(app, tab):
    return app.main_screen.query_one(f"#{tab}-table")


async def test_panes_show_what_the_coordinator_holds(make_app, seeded_db):
    app = make_app(seeded_db)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: loaded(app), "panes to load")
        bounties = {b.id: b for b in _table(app, "bounties").records}
        # from the ledger: 100,000 sat pool minus 44,400 paid, 11,100 held back and a 4,500 fee
        assert bounties["b_logparse01"].pool_left_msat == 40_000_000
        # The payout rule's one figure (payout_funding.pool_left): a CLOSED bounty with no funding
        # in the books has nothing left to pay, whatever its payments sum to.
        assert bounties["b_sortbench3"].pool_left_msat == 0
        assert bounties["b_logparse01"].best == 0.861 and bounties["b_logparse01"].submissions == 4
        assert bounties["b_charlm0002"].funding_bolt11.startswith("lnbcrt2687u1")
        subs = {s.id: s for s in _table(app, "submissions").records}
        assert subs["s_flagged002"].heldout_score == 0.79 and "canary" in subs["s_flagged002"].reasons
        assert subs["s_accepted01"].payout_msat == 44_400_000  # the holdback is still pending
        ledger = _table(app, "ledger").records
        holdback = next(r for r in ledger if r.kind == "holdback")
        assert holdback.status == "HELD" and holdback.amount_msat == 11_100_000
        assert holdback.detail.startswith("release 2026-12-01")
        assert {r.kind for r in ledger} >= {"funding hold", "stake hold", "payout", "refund", "fee"}
        assert "l402 fee" not in {r.kind for r in ledger}  # download fees are not sponsor money
        log = app.main_screen.query_one(EvalLogPane)
        assert log.evaluation.id == 1 and log.view.lines[-1] == "[score] f1=0.861 wall_s=4.2"
        assert "no GPU" in str(app.main_screen.query_one("#telemetry").render().renderables[0])


async def test_a_new_event_refreshes_the_panes_without_a_key(make_app, seeded_db):
    app = make_app(seeded_db)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: loaded(app), "panes to load")
        db = open_sync(seeded_db)  # another process (the coordinator) writes a submission
        with db.conn:
            db["submissions"].insert({"id": "s_brandnew99", "bounty_id": "b_logparse01", "status": "QUEUED",
                                      "diff": "x", "created_at": NOW, "updated_at": NOW})
            db["events"].insert({"kind": "submission.status", "subject_id": "s_brandnew99",
                                 "payload_json": json.dumps({"status": "QUEUED"}), "created_at": NOW})
        db.close()
        await wait_for(pilot, lambda: "s_brandnew99" in {s.id for s in _table(app, "submissions").records},
                       "the new submission to appear")
        await wait_for(pilot, lambda: {b.id: b for b in _table(app, "bounties").records}["b_logparse01"]
                       .submissions == 5, "the bounty's count to follow")
        assert "submission s_brandnew99 is now QUEUED" in app.main_screen.query_one("#status").last_event


async def test_the_eval_log_follows_a_running_evaluation_until_you_scroll_up(make_app, seeded_db, tmp_path):
    log_file = tmp_path / "running.log"
    log_file.write_text("".join(f"warmup {i}\n" for i in range(100)))
    db = open_sync(seeded_db)
    with db.conn:
        db["evaluations"].insert({"id": 2, "bounty_id": "b_logparse01", "submission_id": "s_queued0004",
                                  "kind": "submission", "status": "RUNNING", "sandbox": "local",
                                  "created_at": NOW})
        db["eval_runs"].insert({"evaluation_id": 2, "repeat": 0, "log_path": str(log_file)})
    db.close()
    app = make_app(seeded_db)
    async with app.run_test(size=(120, 40)) as pilot:
        pane = app.main_screen.query_one(EvalLogPane)
        view = pane.view
        await wait_for(pilot, lambda: len(view.lines) == 101, "the running log (header + 100 lines)")
        assert pane.evaluation.id == 2  # the running evaluation wins over the newest finished one
        await wait_for(pilot, lambda: view.scroll_y == view.max_scroll_y > 0, "following at the end")
        with log_file.open("a") as fh:
            fh.write("step 1\nstep 2\npartial")  # a partial last line waits for its newline
        await wait_for(pilot, lambda: view.lines[-1] == "step 2", "new lines")
        await wait_for(pilot, lambda: view.scroll_y == view.max_scroll_y, "still following")
        view.scroll_to(y=0, animate=False, immediate=True)
        await pilot.pause(0.05)
        assert not view.follow
        with log_file.open("a") as fh:
            fh.write(" line\nstep 3\n")
        await wait_for(pilot, lambda: view.lines[-1] == "step 3", "more lines")
        assert view.lines[-2] == "partial line" and view.scroll_y == 0  # the reader's place is kept
        await pilot.press("l", "end")
        await wait_for(pilot, lambda: view.scroll_y == view.max_scroll_y, "following again after End")


async def test_search_jumps_between_matches_and_wraps(make_app, seeded_db):
    app = make_app(seeded_db)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: loaded(app), "panes to load")
        view = app.main_screen.query_one(EvalLogPane).view
        await pilot.press("l", "slash", *"loss=2.49", "enter")  # / searches the log once it has focus
        assert view.lines[view.match_line] == "[run] step 001 loss=2.490"
        assert view.match_count() == 1
        await pilot.press("slash", *"STEP 05", "enter")  # case-insensitive
        assert view.lines[view.match_line] == "[run] step 050 loss=2.000"
        await pilot.press("n")
        assert view.lines[view.match_line] == "[run] step 051 loss=1.990"
        await pilot.press("N", "N")  # back past the first match: wraps to the last one
        assert view.lines[view.match_line] == "[run] step 059 loss=1.910"
        await pilot.press("slash", *"no such text", "enter")
        assert view.match_line is None


async def test_copy_gives_the_invoice_to_pay_or_the_id(make_app, seeded_db):
    app = make_app(seeded_db)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: loaded(app), "panes to load")
        table = _table(app, "bounties")
        table.move_cursor(row=[b.id for b in table.records].index("b_charlm0002"))
        await pilot.press("y")
        assert app.clipboard == "lnbcrt2687u1pfund2qqsp5awaitingpayment"
        table.move_cursor(row=[b.id for b in table.records].index("b_logparse01"))
        await pilot.press("y")
        assert app.clipboard == "b_logparse01"
        await pilot.press("3")
        ledger = _table(app, "ledger")
        ledger.move_cursor(row=[r.kind for r in ledger.records].index("stake hold"))
        await pilot.press("y")
        assert app.clipboard == "lnbcrt50u1pstake2"


async def test_export_writes_the_table_on_screen_with_full_values(make_app, seeded_db, tmp_path):
    app = make_app(seeded_db)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: loaded(app), "panes to load")
        await pilot.press("2", "e")
        export_dir = tmp_path / "exports"
        await wait_for(pilot, lambda: export_dir.exists() and any(export_dir.glob("submissions-*.csv")),
                       "the CSV file")
    (path,) = export_dir.glob("submissions-*.csv")
    rows = list(csv.DictReader(path.open()))
    assert len(rows) == 5
    flagged = next(r for r in rows if r["id"] == "s_flagged002")
    assert flagged["heldout_score"] == "0.79" and flagged["bounty_id"] == "b_logparse01"
    assert next(r for r in rows if r["id"] == "s_accepted01")["payout_msat"] == "44400000"


async def test_the_read_only_view_offers_nothing_that_writes_and_says_how_to_attach(make_app, seeded_db):
    app = make_app(seeded_db)
    async with app.run_test(size=(160, 40)) as pilot:
        await wait_for(pilot, lambda: loaded(app), "panes to load")
        table = _table(app, "bounties")
        table.move_cursor(row=[b.id for b in table.records].index("b_charlm0002"))  # awaiting funding
        await pilot.pause(0.1)
        footer = {b.binding.action for b in app.screen.active_bindings.values()
                  if b.binding.show and app.check_action(b.binding.action, ())}
        assert not footer & {"create_bounty", "fund_bounty", "review_submission", "close_bounty"}
        assert "quit" in footer and "export_csv" in footer
        screens = len(app.screen_stack)
        await pilot.press("c", "f", "X")
        assert len(app.screen_stack) == screens  # no dialog opened
        status = app.main_screen.query_one("#status").render().plain
        assert "--attach" in status


async def test_actions_are_offered_only_where_they_apply(make_app, seeded_db):
    app = make_app(seeded_db, acting=True)
    async with app.run_test(size=(160, 40)) as pilot:
        await wait_for(pilot, lambda: loaded(app), "panes to load")
        table = _table(app, "bounties")
        table.move_cursor(row=[b.id for b in table.records].index("b_logparse01"))  # OPEN: nothing to fund
        assert not app.check_action("fund_bounty", ()) and app.check_action("close_bounty", ())
        table.move_cursor(row=[b.id for b in table.records].index("b_charlm0002"))
        assert app.check_action("fund_bounty", ())
        await pilot.press("2")
        subs = _table(app, "submissions")
        for sid, offered in (("s_rejected03", False), ("s_accepted01", False), ("s_flagged002", True)):
            subs.move_cursor(row=[s.id for s in subs.records].index(sid))
            assert bool(app.check_action("review_submission", ())) is offered, sid
