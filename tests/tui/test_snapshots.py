"""Screenshots of every pane and screen, dark and light (pytest-textual-snapshot).

Update after an intended change with ``pytest tests/tui --snapshot-update`` and look
at the report before committing."""

from __future__ import annotations

import pytest

from pathlib import Path

from tests.tui.conftest import loaded, wait_for
from tests.tui.seed import seed_running_evaluation

THEMES = ["l402-dark", "l402-light"]
BIG = (120, 40)
SMALL = (80, 24)
WIDE = (200, 60)
SAMPLES = Path(__file__).resolve().parents[2] / "sample_bounties"


def _ready(extra=None):
    async def run_before(pilot) -> None:
        await wait_for(pilot, lambda: loaded(pilot.app), "panes to load")
        if extra is not None:
            await extra(pilot)
        # Let workers report and the screen settle (under a loaded CI box this takes a moment).
        await pilot.wait_for_scheduled_animations()
        await pilot.pause(0.3)

    return run_before


@pytest.mark.parametrize("theme", THEMES)
def test_bounties_pane(snap_compare, make_app, seeded_db, theme):
    assert snap_compare(make_app(seeded_db, theme=theme), terminal_size=BIG, run_before=_ready())


@pytest.mark.parametrize("theme", THEMES)
def test_submissions_pane(snap_compare, make_app, seeded_db, theme):
    assert snap_compare(make_app(seeded_db, theme=theme), terminal_size=BIG, press=["2"], run_before=_ready())


@pytest.mark.parametrize("theme", THEMES)
def test_ledger_pane(snap_compare, make_app, seeded_db, theme):
    assert snap_compare(make_app(seeded_db, theme=theme), terminal_size=BIG, press=["3"], run_before=_ready())


@pytest.mark.parametrize("theme", THEMES)
def test_eval_log_pane_searched(snap_compare, make_app, seeded_db, theme):
    async def search(pilot):
        await pilot.press("l", "slash", *"step 03", "enter")

    assert snap_compare(make_app(seeded_db, theme=theme), terminal_size=BIG, run_before=_ready(search))


@pytest.mark.parametrize("theme", THEMES)
def test_gpu_pane_with_a_gpu(snap_compare, make_app, seeded_db, theme):
    assert snap_compare(make_app(seeded_db, theme=theme, with_gpu=True), terminal_size=BIG, run_before=_ready())


@pytest.mark.parametrize("theme", THEMES)
def test_agent_panel_without_a_loop(snap_compare, make_app, seeded_db, theme):
    assert snap_compare(make_app(seeded_db, theme=theme), terminal_size=BIG, press=["a"], run_before=_ready())


@pytest.mark.parametrize("theme", THEMES)
def test_agent_panel_with_a_running_loop(snap_compare, make_app, seeded_db, theme):
    from tests.tui.conftest import RecordedAgent

    async def shown(pilot):
        panel = pilot.app.main_screen.query_one("#agent")
        await wait_for(pilot, lambda: len(panel.experiments) == 6 and panel.step, "the recorded events")

    assert snap_compare(make_app(seeded_db, theme=theme, agent=RecordedAgent()), terminal_size=BIG, press=["a"],
                        run_before=_ready(shown))


@pytest.mark.parametrize("theme", THEMES)
def test_keys_screen(snap_compare, make_app, seeded_db, theme):
    assert snap_compare(make_app(seeded_db, theme=theme), terminal_size=BIG, press=["question_mark"],
                        run_before=_ready())


@pytest.mark.parametrize("theme", THEMES)
def test_create_bounty_screen_reports_problems(snap_compare, make_app, seeded_db, theme):
    async def create(pilot):
        await pilot.press("c", *"no/such/folder", "enter")
        await wait_for(pilot, lambda: pilot.app.screen.report is not None, "validation")

    assert snap_compare(make_app(seeded_db, theme=theme, acting=True), terminal_size=BIG, run_before=_ready(create))


@pytest.mark.parametrize("theme", THEMES)
def test_review_screen_shows_the_diff(snap_compare, make_app, seeded_db, theme):
    async def review(pilot):
        table = pilot.app.main_screen.query_one("#submissions-table")
        await pilot.press("2")
        table.move_cursor(row=[r.id for r in table.records].index("s_flagged002"))
        await pilot.press("v")
        await pilot.pause(0.2)

    assert snap_compare(make_app(seeded_db, theme=theme, acting=True), terminal_size=BIG, run_before=_ready(review))


@pytest.mark.parametrize("theme", THEMES)
def test_fund_dialog(snap_compare, make_app, seeded_db, theme):
    async def fund(pilot):
        table = pilot.app.main_screen.query_one("#bounties-table")
        table.move_cursor(row=[r.id for r in table.records].index("b_charlm0002"))
        await pilot.press("f")

    assert snap_compare(make_app(seeded_db, theme=theme, acting=True), terminal_size=BIG, run_before=_ready(fund))


@pytest.mark.parametrize("theme", THEMES)
def test_small_terminal(snap_compare, make_app, seeded_db, theme):
    assert snap_compare(make_app(seeded_db, theme=theme), terminal_size=SMALL, run_before=_ready())


def test_ansi_theme_for_tmux(snap_compare, make_app, seeded_db):
    assert snap_compare(make_app(seeded_db, theme="l402-ansi"), terminal_size=BIG, run_before=_ready())


@pytest.mark.parametrize("theme", THEMES)
def test_live_log_mid_run(snap_compare, make_app, seeded_db, theme):
    seed_running_evaluation(seeded_db)

    async def running(pilot):
        pane = pilot.app.main_screen.query_one("#eval-log")
        await wait_for(pilot, lambda: pane.evaluation.id == 2 and pane.repeat == 2, "the running log")

    assert snap_compare(make_app(seeded_db, theme=theme), terminal_size=BIG, run_before=_ready(running))


@pytest.mark.parametrize("theme", THEMES)
def test_submission_detail(snap_compare, make_app, seeded_db, theme):
    async def detail(pilot):
        table = pilot.app.main_screen.query_one("#submissions-table")
        await pilot.press("2")
        table.move_cursor(row=[r.id for r in table.records].index("s_accepted01"))
        await pilot.press("enter")
        await wait_for(pilot, lambda: getattr(pilot.app.screen, "detail", None) is not None, "the detail")
        await wait_for(pilot, lambda: pilot.app.screen.query_one("#detail-log").view.lines, "its log")

    assert snap_compare(make_app(seeded_db, theme=theme), terminal_size=(160, 48), run_before=_ready(detail))


@pytest.mark.parametrize("theme", THEMES)
def test_filtered_table(snap_compare, make_app, seeded_db, theme):
    async def filtered(pilot):
        await pilot.press("2", "slash", *"logparse", "enter", "o", "o", "o", "o", "O")

    assert snap_compare(make_app(seeded_db, theme=theme), terminal_size=BIG, run_before=_ready(filtered))


@pytest.mark.parametrize("theme", THEMES)
def test_create_dialog_picks_self_funding_and_says_why(snap_compare, make_app, seeded_db, theme, monkeypatch):
    monkeypatch.chdir(SAMPLES.parent)  # the path typed is the same on every checkout

    async def create(pilot):
        await pilot.press("c", *"sample_bounties/logparse", "enter")
        await wait_for(pilot, lambda: pilot.app.screen.report is not None, "validation")
        await pilot.pause(0.2)

    assert snap_compare(make_app(seeded_db, theme=theme, acting=True, balance_msat=2_000_000), terminal_size=BIG,
                        run_before=_ready(create))


def test_wide_terminal_uses_the_width(snap_compare, make_app, seeded_db):
    assert snap_compare(make_app(seeded_db), terminal_size=WIDE, press=["3"], run_before=_ready())
