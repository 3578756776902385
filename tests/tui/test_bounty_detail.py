"""Enter on a bounty: its scores by submission (best so far, accepted marked) and its pool
draining payment by payment, from the rows the panes already hold."""

from __future__ import annotations

from l402tui.tui.bounty_history import pool_history, score_history
from l402tui.tui.source import BountyRow, LedgerRow, SubmissionRow
from tests.tui.conftest import loaded, wait_for


def _sub(i, status, score):
    return SubmissionRow(f"s{i}", "b1", status, None, score, "", 0, 100.0 + i)


def test_the_best_moves_only_on_accepted_submissions():
    bounty = BountyRow("b1", "x", "OPEN", "f1", 100_000_000, 40_000_000, 0.5, 0.7, None, 4)
    subs = [_sub(3, "REJECTED", 0.9), _sub(1, "ACCEPTED", 0.6), _sub(2, "FLAGGED", 0.95), _sub(4, "PAID_FULL", 0.7),
            SubmissionRow("other", "b2", "ACCEPTED", None, 0.99, "", 0, 1.0)]
    h = score_history(bounty, subs)
    assert h.ids == ["s1", "s2", "s3", "s4"]  # oldest first, this bounty only
    assert h.best == [0.6, 0.6, 0.6, 0.7]  # a flagged 0.95 or a rejected 0.9 is never the best
    assert h.kept == [(0, 0.6), (3, 0.7)]


def test_the_pool_drains_by_payments_and_ends_at_the_coordinators_figure():
    bounty = BountyRow("b1", "x", "OPEN", "f1", 100_000_000, 40_000_000, 0.5, 0.7, None, 4)
    ledger = [LedgerRow(20.0, "holdback", "PENDING", 11_100_000, "b1", "s1", "k2"),
              LedgerRow(10.0, "payout", "COMPLETE", 44_400_000, "b1", "s1", "k1"),
              LedgerRow(11.0, "payout", "FAILED", 5_000_000, "b1", "s2", "k3"),  # never left the pool
              LedgerRow(12.0, "holdback", "HELD", 11_100_000, "b1", "s1", "t1"),  # a reservation, not a payment
              LedgerRow(13.0, "payout", "COMPLETE", 9_000_000, "b2", "s9", "k4")]  # another bounty's
    steps = pool_history(bounty, ledger)
    assert [(s.kind, s.left_msat) for s in steps] == [
        ("funded", 100_000_000), ("payout", 55_600_000), ("holdback", 44_500_000), ("now", 40_000_000)]


async def test_enter_on_a_bounty_opens_its_charts(make_app, seeded_db):
    app = make_app(seeded_db)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_for(pilot, lambda: loaded(app), "panes to load")
        table = app.main_screen.query_one("#bounties-table")
        table.move_cursor(row=[r.id for r in table.records].index("b_logparse01"))
        await pilot.press("enter")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "BountyDetailScreen", "the detail")
        chart = str(app.screen.query_one("#score-chart").render())
        assert any("\u2800" < c <= "\u28ff" for c in chart)  # braille dots: the points are drawn
        steps = app.screen._steps()
        assert "0.861" in chart and [c._cells for c in steps.columns][2] == ["44,400", ""]
        await pilot.press("escape")
        assert app.screen is app.main_screen
