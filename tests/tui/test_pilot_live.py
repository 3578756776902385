"""A running evaluation's log as it is written, and the submission detail view."""

from __future__ import annotations

import json

from l402tui.store import open_sync
from l402tui.tui.screens.submission_detail import SubmissionDetailScreen
from l402tui.tui.widgets.eval_log_pane import EvalLogPane
from tests.tui.conftest import loaded, wait_for
from tests.tui.seed import NOW, seed_running_evaluation


async def test_a_running_evaluation_streams_its_log_with_progress_before_it_is_done(make_app, seeded_db):
    folder = seed_running_evaluation(seeded_db)
    app = make_app(seeded_db)
    async with app.run_test(size=(120, 40)) as pilot:
        pane = app.main_screen.query_one(EvalLogPane)
        await wait_for(pilot, lambda: pane.evaluation is not None and pane.evaluation.id == 2
                       and "[run] batch 01 f1=0.81" in pane.view.lines, "the running log")
        lines = pane.view.lines
        assert lines[0] == "── required tests · tests.log ──" and "[tests] 12 passed in 0.41s" in lines
        assert "── repeat 2 · repeat-1.log ──" in lines  # the second repeat is being written
        title = str(app.main_screen.query_one("#log-title").render())
        assert "RUNNING" in title and "repeat 2/3" in title and "8s" in title
        # The harness appends a line: it shows while the evaluation is still RUNNING.
        with (folder / "repeat-1.log").open("a") as fh:
            fh.write("[run] batch 02 f1=0.825\n")
        await wait_for(pilot, lambda: pane.view.lines[-1] == "[run] batch 02 f1=0.825", "a line mid-run")
        assert pane.evaluation.status == "RUNNING"
        (folder / "repeat-2.log").write_text("[run] batch 00 f1=0.79\n")
        await wait_for(pilot, lambda: pane.view.lines[-1] == "[run] batch 00 f1=0.79", "the third repeat")
        assert "repeat 3/3" in str(app.main_screen.query_one("#log-title").render())
        # Finished: the rows the queue writes at the end do not make the log read twice.
        db = open_sync(seeded_db)
        with db.conn:
            db["evaluations"].update(2, {"status": "DONE", "finished_at": NOW + 5})
            db["eval_runs"].insert_all([{"evaluation_id": 2, "repeat": r, "log_path": str(folder / f"repeat-{r}.log")}
                                        for r in range(3)])
            db["events"].insert({"kind": "evaluation.done", "subject_id": "2", "payload_json": "{}",
                                 "created_at": NOW})
        db.close()
        await wait_for(pilot, lambda: pane.evaluation.status == "DONE", "the evaluation to finish")
        await pilot.pause(0.3)
        assert pane.view.lines.count("[run] batch 02 f1=0.825") == 1
        assert "13s" in str(app.main_screen.query_one("#log-title").render())  # started 8 s ago, done 5 s on


async def test_enter_on_a_submission_opens_its_detail_with_full_ids_reasons_and_log(make_app, seeded_db):
    db = open_sync(seeded_db)
    with db.conn:  # the operator's verdict, with a number that would print float noise
        db["submissions"].update("s_accepted01", {"verdict_json": json.dumps(
            {"heldout_score": 0.861, "decision": "ACCEPTED", "improvement": 0.9679559999999999,
             "codes": ["below_threshold"]})})
    db.close()
    app = make_app(seeded_db)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_for(pilot, lambda: loaded(app), "panes to load")
        await pilot.press("2")
        table = app.main_screen.query_one("#submissions-table")
        table.move_cursor(row=[r.id for r in table.records].index("s_accepted01"))
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, SubmissionDetailScreen), "the detail view")
        screen = app.screen
        await wait_for(pilot, lambda: screen.detail is not None, "the operator's detail")
        await wait_for(pilot, lambda: "[score] f1=0.861 wall_s=4.2" in screen.query_one(EvalLogPane).view.lines,
                       "the evaluation's log")
        summary = _plain(screen._summary())  # what the Static shows
        assert "s_accepted01" in summary and "b_logparse01" in summary and "improvement 6.0 % > 3σ" in summary
        assert "0.968" in summary and "0.96795" not in summary  # no float noise
        assert "not enough better than the best" in summary  # a code as words
        assert "payout 44,400 sat · COMPLETE" in summary and "holdback 11,100 sat · HELD" in summary
        await pilot.press("y")
        assert app.clipboard == "s_accepted01"
        await pilot.press("escape")
        assert not isinstance(app.screen, SubmissionDetailScreen)


def _plain(renderable) -> str:
    from rich.console import Console

    console = Console(width=200, record=True)
    console.print(renderable)
    return console.export_text()
