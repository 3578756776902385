"""The demo's story on screen: the story pane narrates as lines come (the newest whole,
older ones fading), the summary screen opens when the story is complete and `d` opens it
again; lines told before the app runs are not lost.  Snapshots drive the pane and the
screen in tiny apps with recorded lines; the real demo is tests/tui/test_tmux_demo.py."""

from __future__ import annotations

import pytest
from textual.app import App, ComposeResult

from l402tui.demo.interactive import StoryRelay
from l402tui.demo.story import MILESTONE_SENTENCES, REQUIRED, StorySummary
from l402tui.tui.messages import StoryEnded, StoryTold
from l402tui.tui.screens.demo_summary import DemoSummaryScreen
from l402tui.tui.widgets.story_pane import StoryPane
from tests.tui.conftest import loaded, wait_for

# Lines as `l402tui demo --headless` printed them on 2026-11-30 (ids shortened by hand).
RECORDED = [
    (0.4, "simulated Lightning network ready: sponsor 1,000,000 sats, agent-1 100,000 sats, agent-2 100,000 sats"),
    (1.2, "sponsor posted bounty “logparse” (b_logparse01), pool 100,000 sats"),
    (1.3, "logparse: funding hold invoice issued for 107,500 sats (pool + fee)"),
    (1.6, "sponsor paid the funding hold invoice for b_logparse01 (107,500 sats): payment IN_FLIGHT (held)"),
    (1.9, "logparse: OPEN — the sponsor's payment is held in escrow (hold invoice ACCEPTED)"),
    (9.8, "logparse: baseline measured on the held-out set (f1 0.812)"),
    (12.4, "L402 fee paid: 21 sats for logparse"),
    (20.9, "agent-1: experiment 1 keep        0.83  THRESHOLD 0.5 -> 0.62"),
    (31.0, "agent-1: submitted s_accepted01 (public 0.87; spent 42 sats so far)"),
    (48.1, "submission s_accepted01: ACCEPTED — improvement 6.0 % > 3σ"),
    (48.6, "payout for s_accepted01: 44,400 sats now (80 %), 11,100 sats held back for the stability check"),
]

SUMMARY = StorySummary(
    milestones=[(n, MILESTONE_SENTENCES[n], at) for n, at in
                zip((*REQUIRED, "holdback_paid"), (1.9, 12.4, 20.9, 48.1, 48.6, 147.8, 150.2))],
    balances=[("sponsor", 1_000_000_000, 884_500_000), ("agent-1", 100_000_000, 155_458_000),
              ("agent-2", 100_000_000, 99_937_000)],
    bounties=[{"id": "b_logparse01", "name": "logparse", "status": "OPEN", "pool_left_sats": 44_500, "submissions": 2},
              {"id": "b_sortbench3", "name": "sortbench", "status": "OPEN", "pool_left_sats": 20_000,
               "submissions": 1}],
    submissions=[{"id": "s_accepted01", "bounty_id": "b_logparse01", "status": "PAID_FULL", "paid_msat": 55_500_000},
                 {"id": "s_rejected03", "bounty_id": "b_logparse01", "status": "REJECTED", "paid_msat": 0},
                 {"id": "s_sortq0004", "bounty_id": "b_sortbench3", "status": "EVALUATING", "paid_msat": 0}])


class StoryApp(App):
    """Just the pane, told the recorded lines."""

    CSS = "StoryPane { height: 8; }"

    def __init__(self, lines):
        super().__init__()
        self.lines = lines

    def compose(self) -> ComposeResult:
        yield StoryPane(id="story")

    def on_mount(self) -> None:
        pane = self.query_one(StoryPane)
        for at_s, line in self.lines:
            pane.tell(at_s, line)


class SummaryApp(App):
    def on_mount(self) -> None:
        self.push_screen(DemoSummaryScreen(SUMMARY))


def test_story_pane_narrates(snap_compare):
    assert snap_compare(StoryApp(RECORDED), terminal_size=(100, 9))


def test_story_pane_keeps_the_newest_line_whole_when_narrow(snap_compare):
    assert snap_compare(StoryApp(RECORDED), terminal_size=(60, 9))


@pytest.mark.parametrize("size", [(120, 40), (80, 24)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_demo_summary_screen(snap_compare, size):
    assert snap_compare(SummaryApp(), terminal_size=size)


async def test_the_pane_shows_the_newest_lines_and_hides_until_told():
    app = StoryApp([])
    async with app.run_test(size=(100, 9)) as pilot:
        pane = app.query_one(StoryPane)
        assert not pane.display  # outside the demo: no pane
        for at_s, line in RECORDED:
            pane.tell(at_s, line)
        await pilot.pause()
        assert pane.display
        shown = " ".join(pane.render().plain.split())  # wrapped rows joined back
        assert f"48.6s {RECORDED[-1][1]}" in shown  # the newest, whole
        assert RECORDED[0][1] not in shown  # the oldest scrolled off the top
        assert shown.index("9.8s") < shown.index("12.4s") < shown.index("48.6s")  # oldest on top


async def test_the_app_tells_the_story_then_opens_its_summary(make_app, seeded_db):
    app = make_app(seeded_db)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: loaded(app), "panes to load")
        pane = app.main_screen.query_one(StoryPane)
        assert not pane.display
        assert app.check_action("show_summary", ()) is False  # no summary yet: no `d` in the footer
        for at_s, line in RECORDED:
            app.post_message(StoryTold(at_s, line))
        await wait_for(pilot, lambda: len(pane.lines) == len(RECORDED), "the story lines")
        assert pane.display and pane.region.height > 0
        await pilot.press("d")
        assert not isinstance(app.screen, DemoSummaryScreen)
        app.post_message(StoryEnded(SUMMARY))
        await wait_for(pilot, lambda: isinstance(app.screen, DemoSummaryScreen), "the summary screen")
        assert app.main_screen.query_one(StoryPane).ended
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, DemoSummaryScreen), "the summary to close")
        assert app.check_action("show_summary", ()) is True
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, DemoSummaryScreen), "the summary again")


def test_summary_renders_every_part():
    from rich.console import Console

    from l402tui.tui.screens.demo_summary import summary_renderable

    console = Console(width=120, record=True)
    console.print(summary_renderable(SUMMARY))
    text = console.export_text()
    for sentence in MILESTONE_SENTENCES.values():
        assert sentence in text
    assert "147.8" in text and "+55,458" in text and "−115,500" in text  # release time, agent's gain, sponsor's cost
    assert "b_logparse01" in text and "s_sortq0004" in text and "EVALUATING" in text
    broken = StorySummary(SUMMARY.milestones, SUMMARY.balances, problem="could not read bounties: gone")
    console = Console(width=120, record=True)
    console.print(summary_renderable(broken))
    assert "could not read bounties: gone" in console.export_text()


def test_relay_keeps_lines_told_before_the_app_runs():
    posted: list = []
    running = [False]
    relay = StoryRelay(posted.append, lambda: running[0])
    relay.tell(0.1, "first")
    relay.tell(0.2, "second")
    assert posted == []
    running[0] = True
    relay.tell(0.3, "third")
    assert [m.line for m in posted] == ["first", "second", "third"]
    relay.end(SUMMARY)
    assert isinstance(posted[-1], StoryEnded) and posted[-1].summary is SUMMARY
