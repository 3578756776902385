"""The main tables fit the terminal: at 120×40 (with the GPU/host column) every table
shows what a reader came for without a horizontal scroll; wider, they use the room
(whole ids, whole reasons); short of room, ids are hidden, never cut to a useless stub."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from l402tui.tui.widgets.column_fit import fit_widths, table_width
from tests.tui.conftest import loaded, wait_for


@dataclass
class Col:
    shrink: int | None = None
    drop: int | None = None


def test_natural_widths_when_they_fit():
    cols = [Col(), Col(shrink=4), Col(drop=1)]
    assert fit_widths(cols, [5, 10, 8], [5, 10, 8], 40) == [5, 10, 8]
    assert table_width([5, 10, 8]) == 5 + 10 + 8 + 2 * 2  # no trailing gap


def test_shrinkable_columns_give_way_before_any_is_hidden():
    cols = [Col(), Col(shrink=4), Col(drop=1)]
    assert fit_widths(cols, [5, 10, 8], [5, 10, 8], 23) == [5, 6, 8]


def test_droppable_columns_hide_lowest_first_and_the_room_goes_back():
    cols = [Col(), Col(shrink=4), Col(drop=2), Col(drop=1)]
    # Shrinking alone is not enough: the drop=1 column goes, and the shrunk one gets its width back.
    widths = fit_widths(cols, [5, 10, 8, 12], [5, 10, 8, 12], 29)
    assert widths == [5, 10, 8, 0]
    assert table_width(widths) <= 29
    widths = fit_widths(cols, [5, 10, 8, 12], [5, 10, 8, 12], 15)
    assert widths[2:] == [0, 0] and table_width(widths) <= 15


def test_a_capped_column_grows_into_spare_room():
    cols = [Col(), Col(shrink=20)]
    assert fit_widths(cols, [5, 60], [5, 140], 100) == [5, 93]
    assert fit_widths(cols, [5, 60], [5, 140], 200) == [5, 140]


SIZES = {(120, 40): {"bounties": {"Bounty", "Status", "Best", "Baseline", "Pool left", "Deadline", "Subs", "Metric"},
                     "submissions": {"Submission", "Status", "Claimed", "Held-out", "Paid (sat)", "Reasons"},
                     "ledger": {"At (UTC)", "Kind", "Status", "Amount (sat)", "Detail"}},
         (200, 60): None}  # None: every column


@pytest.mark.parametrize("size", list(SIZES), ids=lambda s: f"{s[0]}x{s[1]}")
async def test_tables_fit_the_terminal(make_app, seeded_db, size):
    app = make_app(seeded_db)
    async with app.run_test(size=size) as pilot:
        await wait_for(pilot, lambda: loaded(app), "panes to load")
        for tab in ("bounties", "submissions", "ledger"):
            await pilot.press({"bounties": "1", "submissions": "2", "ledger": "3"}[tab])
            await pilot.pause()
            table = app.main_screen.query_one(f"#{tab}-table")
            shown = set(table.shown_columns)
            expected = SIZES[size][tab] if SIZES[size] else {c.label for c in table.columns}
            assert expected <= shown, (tab, size, shown)
            # No horizontal scroll: the table is no wider than its pane.
            assert table.virtual_size.width <= table.scrollable_content_region.width, (tab, size)
            if SIZES[size] is None:  # wide: ids whole, and long reasons take the room that is left
                ids = {"Id", "Submission", "Bounty", "Reference"} - ({"Bounty"} if tab == "bounties" else set())
                for record in table.records:
                    for col, width in zip(table.columns, table._widths):
                        if col.label in ids:
                            text = col.cell(record)
                            assert len(getattr(text, "plain", str(text))) <= width, (tab, col.label)
                if tab == "submissions":  # the seeded reasons are longer than the room
                    assert table.virtual_size.width == table.scrollable_content_region.width


def test_shrinkable_columns_give_up_their_floor_before_the_table_scrolls_sideways():
    # The ledger at 80 columns with a long status: At, Kind, Status, Amount cannot shrink; Detail can.
    cols = [Col(), Col(), Col(), Col(), Col(shrink=17), Col(drop=1)]
    natural = [16, 12, 18, 12, 28, 12]
    widths = fit_widths(cols, natural, natural, 79)
    assert widths == [16, 12, 18, 12, 13, 0] and table_width(widths) == 79
    # Too narrow to say anything: hidden rather than a stub.
    widths = fit_widths(cols, natural, natural, 70)
    assert widths == [16, 12, 18, 12, 0, 0] and table_width(widths) <= 70


async def test_the_ledger_fits_80_columns_with_the_longest_status(make_app, seeded_db):
    from l402tui.store import open_sync

    db = open_sync(seeded_db)
    with db.conn:  # a forfeited holdback and a long amount: the widest ledger row there is
        db.conn.execute("UPDATE payments SET status = 'HOLDBACK_FORFEITED', amount_msat = 1234567891 "
                        "WHERE rowid = (SELECT MIN(rowid) FROM payments)")
    db.close()
    app = make_app(seeded_db)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: loaded(app), "panes to load")
        await pilot.press("3")
        await pilot.pause()
        table = app.main_screen.query_one("#ledger-table")
        assert any(r.status == "HOLDBACK_FORFEITED" for r in table.records)
        assert {"At (UTC)", "Kind", "Status", "Amount (sat)"} <= set(table.shown_columns)
        assert table.virtual_size.width <= table.scrollable_content_region.width
        assert table.max_scroll_x == 0
