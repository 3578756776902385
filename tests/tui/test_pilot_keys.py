"""Keys, the command palette and themes: remappable, discoverable, switchable."""

from __future__ import annotations

from tests.tui.conftest import loaded, wait_for


async def test_a_remapped_key_replaces_the_default_everywhere(make_app, seeded_db):
    app = make_app(seeded_db, keymap={"toggle_agent": "ctrl+t"})
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: loaded(app), "panes to load")
        panel = app.main_screen.query_one("#agent")
        await pilot.press("a")
        assert not panel.display  # the old key no longer toggles
        await pilot.press("ctrl+t")
        assert panel.display
        await pilot.press("question_mark")
        keys = app.screen
        assert keys._key_for("toggle_agent", "a") == "ctrl+t"  # the keys screen shows the key in effect


async def test_every_action_is_in_the_command_palette(make_app, seeded_db, tmp_path):
    from l402tui.tui.actions import APP_ACTIONS
    from l402tui.tui.commands import ActionsProvider

    app = make_app(seeded_db)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: loaded(app), "panes to load")
        provider = ActionsProvider(app.screen)
        titles = [hit.text for hit in [h async for h in provider.discover()]]
        assert len(titles) == len(APP_ACTIONS)
        assert "Export the table on screen to a CSV file  · key e" in titles
        await pilot.press("ctrl+p")
        await pilot.press(*"export the table")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await wait_for(pilot, lambda: any((tmp_path / "exports").glob("bounties-*.csv")), "the export")


async def test_themes_cycle_and_user_themes_join_them(make_app, seeded_db, tmp_path):
    user_dir = tmp_path / "user-themes"
    user_dir.mkdir()
    (user_dir / "midnight.toml").write_text('name = "midnight"\nprimary = "#7aa2f7"\nbackground = "#1a1b26"\n')
    app = make_app(seeded_db, user_theme_dir=user_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: loaded(app), "panes to load")
        assert app.theme == "l402-dark"
        assert {"l402-dark", "l402-light", "l402-ansi", "midnight"} <= set(app.theme_names)
        seen = set()
        for _ in app.theme_names:
            await pilot.press("T")
            seen.add(app.theme)
        assert seen == set(app.theme_names)


async def test_an_unknown_theme_falls_back_and_says_so(make_app, seeded_db):
    app = make_app(seeded_db, theme="no-such-theme")
    notes = []
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: loaded(app), "panes to load")
        assert app.theme == "l402-dark"
        notes = [n.message for n in app._notifications]
    assert any("unknown theme 'no-such-theme'" in n and "l402-light" in n for n in notes)
