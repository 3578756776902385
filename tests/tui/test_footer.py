"""The footer fits the terminal: at 80 columns it gives up the least used keys (`?` lists
them all) instead of running off the right edge, and keeps Keys, Quit and what applies to
the selected row."""

from __future__ import annotations

from l402tui.tui.widgets.fitting_footer import FittingFooter, key_width
from tests.tui.conftest import loaded, wait_for


def _keys(app):
    footer = app.main_screen.query_one(FittingFooter)
    return footer, [k for k in footer.children if not k.has_class("-command-palette")]


async def test_at_80_columns_the_footer_keeps_what_matters_and_fits(make_app, seeded_db):
    app = make_app(seeded_db, acting=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: loaded(app), "panes to load")
        table = app.main_screen.query_one("#bounties-table")
        table.move_cursor(row=[r.id for r in table.records].index("b_charlm0002"))  # awaiting funding
        await pilot.pause(0.2)
        footer, keys = _keys(app)
        labels = [k.description for k in keys]
        assert {"Keys", "Quit", "Fund", "Open"} <= set(labels), labels
        assert sum(key_width(k) for k in keys) <= footer.size.width
        assert all(k.region.right <= footer.size.width for k in keys)  # nothing cut at the edge
        assert "CSV" not in labels  # the first to go

        await pilot.resize_terminal(160, 40)
        await pilot.pause(0.2)
        _, keys = _keys(app)
        assert "CSV" in [k.description for k in keys]  # wide again: every key is back
