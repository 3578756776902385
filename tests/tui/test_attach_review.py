"""`l402tui --attach URL` against a real `l402tui serve` subprocess: the sponsor follows an
evaluation's log and reviews a flagged submission (its diff, then confirm gaming) — all
through the admin API, nothing read from the daemon's database by the TUI."""

from __future__ import annotations

import json
import time

import pytest

from l402tui.config import load_config
from l402tui.coordinator.client import HttpCoordinatorClient
from l402tui.store import open_sync
from l402tui.tui.api_source import ApiSource
from l402tui.tui.app import L402App
from l402tui.tui.launch import source_factory
from l402tui.tui.screens.review import ReviewScreen
from tests.agent.agent_fixtures import make_bounty
from tests.tui.conftest import FixedGpu, FixedHost, wait_for
from tests.tui.test_attach_restart import settle
from tests.tui.test_pilot_attach import daemon  # noqa: F401 - the `l402tui serve` fixture

pytestmark = pytest.mark.slow

DIFF = "--- a/model.py\n+++ b/model.py\n@@ -1 +1 @@\n-GUESS = 0.5\n+GUESS = 3.0  # read from heldout/a/labels\n"


def _seed_flagged(db_path, bounty_id: str, log_dir) -> int:
    """A submission the anti-gaming checks flagged and its evaluation's log, written as the
    daemon's evaluator would (a separate process, as in production)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / "eval-flagged-0.log"
    log.write_text("".join(f"untrusted step {i}\n" for i in range(40)) + "opened heldout/a/labels\n")
    db = open_sync(db_path)
    now = time.time()
    with db.conn:
        db["submissions"].insert({"id": "s_flagged", "bounty_id": bounty_id, "status": "FLAGGED", "diff": DIFF,
                                  "claimed_score": 0.0, "reasons": json.dumps(["reads the held-out labels"]),
                                  "created_at": now, "updated_at": now})
        eid = db["evaluations"].insert({"bounty_id": bounty_id, "submission_id": "s_flagged", "kind": "submission",
                                        "status": "DONE", "sandbox": "bwrap", "created_at": now}).last_pk
        db["eval_runs"].insert({"evaluation_id": eid, "repeat": 0, "log_path": str(log)})
        db["events"].insert({"kind": "submission.status", "subject_id": "s_flagged",
                             "payload_json": json.dumps({"status": "FLAGGED"}), "created_at": now})
    db.close()
    return eid


def _select(app, tab: str, record_id: str) -> None:
    table = app.main_screen.query_one(f"#{tab}-table")
    table.move_cursor(row=[r.id for r in table.records].index(record_id))


async def test_attached_sponsor_reads_the_log_and_confirms_gaming(daemon, tmp_path):  # noqa: F811
    url, macaroon, data = daemon
    async with HttpCoordinatorClient(url, macaroon_path=macaroon) as admin:
        created = await admin.create_bounty(str(make_bounty(tmp_path / "guess")), self_funded=True)
    bounty_id = created["bounty"]["id"]
    evaluation_id = _seed_flagged(data / "l402tui.sqlite", bounty_id, data / "logs")

    cfg = load_config().with_overrides({"paths.data_dir": str(tmp_path / "client")})
    app = L402App(source_factory(cfg, url, macaroon), gpu=FixedGpu(False), host=FixedHost(),
                  export_dir=tmp_path / "exports", reload_delay_s=0.05, log_poll_s=0.05)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.source is not None, "attaching", timeout=20)
        assert isinstance(app.source, ApiSource) and app.source.local is None  # nothing but HTTP
        subs = lambda: {r.id: r for r in app.main_screen.query_one("#submissions-table").records}  # noqa: E731
        await wait_for(pilot, lambda: "s_flagged" in subs(), "the flagged submission", timeout=20)

        # Choosing it shows its evaluation's log, served by the daemon.
        await pilot.press("2")
        _select(app, "submissions", "s_flagged")
        await wait_for(pilot, lambda: any(e.id == evaluation_id for e in app.evaluations), "its evaluation")
        await pilot.press("enter")
        pane = app.main_screen.query_one("#eval-log")
        await wait_for(pilot, lambda: "opened heldout/a/labels" in pane.view.lines, "the log over HTTP")
        assert pane.logs_here and pane.evaluation.id == evaluation_id
        assert pane.view.lines.count("untrusted step 39") == 1  # followed once, not re-read

        # Review: the diff comes over HTTP; confirming gaming reaches the daemon's payouts module.
        await pilot.press("escape")  # Enter opened the submission's detail; review is on the table
        await pilot.press("v")
        await wait_for(pilot, lambda: isinstance(app.screen, ReviewScreen), "the review screen")
        review = app.screen
        await wait_for(pilot, lambda: review.diff_text == DIFF, "the diff")
        assert not review.query_one("#gaming").disabled
        await pilot.click("#gaming")

        def decision():
            db = open_sync(data / "l402tui.sqlite")
            try:
                row = db.execute("SELECT payload_json FROM events WHERE kind = 'stake.sponsor_decision' "
                                 "AND subject_id = 's_flagged'").fetchone()
            finally:
                db.close()
            return json.loads(row[0]) if row else None

        await wait_for(pilot, lambda: decision() is not None, "the daemon to record the decision", timeout=20)
        assert decision()["gaming_confirmed"] is True
        await wait_for(pilot, lambda: any("gaming confirmed" in str(n.message) for n in app._notifications),
                       "the result shown to the sponsor")
        await settle(pilot, app)
