"""Tables people can drive: filter with /, quick status filter, sort by key or header click,
full ids when there is room."""

from __future__ import annotations

from textual.widgets import Input

from tests.tui.conftest import loaded, wait_for


def _ids(table):
    return [r.id for r in table.records]


async def test_slash_filters_the_focused_table_by_words_in_any_column(make_app, seeded_db):
    app = make_app(seeded_db)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_for(pilot, lambda: loaded(app), "panes to load")
        await pilot.press("2")
        table = app.main_screen.query_one("#submissions-table")
        await pilot.press("slash", *"canary")  # a word of the flagged one's reasons
        assert isinstance(app.focused, Input)
        assert _ids(table) == ["s_flagged002"]
        await pilot.press("enter")  # keeps the filter, back in the table
        assert app.focused is table and _ids(table) == ["s_flagged002"]
        assert "1 of 5 rows · /canary" in app.main_screen.query_one("#submissions-query").render().plain
        await pilot.press("slash", "ctrl+a", "ctrl+k", *"SORTBENCH paid")  # every word, any case
        assert _ids(table) == ["s_sortpaid05"]
        await pilot.press("escape")  # clears
        assert len(table.records) == 5 and app.focused is table
        await pilot.press("F")  # quick status filter: FLAGGED first
        assert _ids(table) == ["s_flagged002"] and table.status_filter == "FLAGGED"
        await pilot.press("F")
        assert table.status_filter not in (None, "FLAGGED") and all(r.status == table.status_filter
                                                                    for r in table.records)


async def test_sort_by_key_and_by_clicking_a_header(make_app, seeded_db):
    app = make_app(seeded_db)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_for(pilot, lambda: loaded(app), "panes to load")
        await pilot.press("2")
        table = app.main_screen.query_one("#submissions-table")
        held = table.columns.index(next(c for c in table.columns if c.label == "Held-out"))
        x = sum(w + 2 for w in table._widths[:held]) + 1
        await pilot.click("#submissions-table", offset=(x, 0))
        assert table.sort_index == held and not table.sort_reverse
        scores = [r.heldout_score for r in table.records]
        assert scores[:4] == sorted(s for s in scores if s is not None) and scores[-1] is None  # no value last
        await pilot.click("#submissions-table", offset=(x, 0))  # again: descending
        assert table.sort_reverse and table.records[0].id == "s_accepted01"
        await pilot.press("O")
        assert not table.sort_reverse
        assert "sorted by Held-out ▲" in app.main_screen.query_one("#submissions-query").render().plain


async def test_ids_are_whole_when_wide_and_cut_when_narrow(make_app, seeded_db):
    app = make_app(seeded_db)
    async with app.run_test(size=(200, 60)) as pilot:
        await wait_for(pilot, lambda: loaded(app), "panes to load")
        await pilot.press("3")
        await pilot.pause(0.1)
        text = "\n".join(app.main_screen.query_one("#ledger-table").render_line(y).text for y in range(12))
        assert "lnbcrt2687u1pfund2qqsp5awaitingpayment" in text  # the whole invoice at 200 columns
    app = make_app(seeded_db)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: loaded(app), "panes to load")
        await pilot.press("3")
        await pilot.pause(0.1)
        table = app.main_screen.query_one("#ledger-table")
        text = "\n".join(table.render_line(y).text for y in range(8))
        assert "lnbcrt2687u1pfund2qqsp5awaitingpayment" not in text
        assert "Amount (sat)" in text and "Status" in text  # the money columns keep their room
