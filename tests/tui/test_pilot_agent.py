"""The agent side panel drives the real autoresearch loop (search proposer, local
evaluation of a tiny real bounty) through start / pause / stop."""

from __future__ import annotations

import pytest

from l402tui.tui.agent_controller import LoopAgentController, local_loop_factory
from l402tui.tui.widgets.agent_panel import AgentPanel
from tests.agent.agent_fixtures import make_bounty
from tests.tui.conftest import loaded, wait_for

pytestmark = pytest.mark.slow  # each experiment runs the bounty's real run + score phases


async def test_toggle_start_pause_resume_and_stop_the_loop(make_app, seeded_db, tmp_path):
    folder = make_bounty(tmp_path / "guess")
    agent = LoopAgentController(local_loop_factory(folder, tmp_path / "agents" / "guess"),
                                description="offline on guess")
    app = make_app(seeded_db, agent=agent)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: loaded(app), "panes to load")
        panel = app.main_screen.query_one(AgentPanel)
        assert not panel.display
        await pilot.press("a")
        assert panel.display and panel.attached and panel.state == "idle"
        await pilot.press("s")
        await wait_for(pilot, lambda: len(panel.experiments) >= 2, "two experiments", timeout=60)
        assert panel.state == "running" and "guess · error (minimize)" in panel.detail
        assert {e.status for e in panel.experiments} <= {"keep", "discard", "crash"}
        assert panel.minimize is True
        await pilot.press("p")
        await wait_for(pilot, lambda: panel.state == "paused", "the pause after the running experiment",
                       timeout=60)
        paused_at = len(panel.experiments)
        rows = (tmp_path / "agents" / "guess" / "results.tsv").read_text().splitlines()[1:]
        experiments = [r for r in rows if not r.endswith("\tbaseline")]
        assert len(experiments) == paused_at  # every experiment the panel showed, logged by the loop
        assert [r.split("\t")[0] for r in experiments] == [e.commit for e in panel.experiments]
        await pilot.press("s")  # resume from results.tsv and the work tree
        await wait_for(pilot, lambda: len(panel.experiments) > paused_at, "one more experiment", timeout=60)
        assert "resumed after" in panel.detail or panel.state == "running"
        await pilot.press("S")
        await wait_for(pilot, lambda: panel.state == "stopped", "the stop", timeout=30)
        await pilot.press("a")
        assert not panel.display
