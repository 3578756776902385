"""The attached TUI across a restart of the `l402tui serve` it watches (real subprocesses,
same port, same data dir): the outage is shown, and afterwards the event written while the
daemon was down arrives — every event once, in order."""

from __future__ import annotations

import json
import socket
import subprocess
import time

import pytest

from l402tui.config import load_config
from l402tui.coordinator.client import HttpCoordinatorClient
from l402tui.store import open_sync
from l402tui.tui.app import L402App
from l402tui.tui.launch import source_factory
from l402tui.tui.messages import CoordinatorEvent
from tests.agent.agent_fixtures import make_bounty
from tests.serve_process import start_serve
from tests.tui.conftest import FixedGpu, FixedHost, wait_for

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


SLOW_BLOCKS = {"L402TUI_LIGHTNING__SIM_BLOCK_INTERVAL_S": "120"}


async def settle(pilot, app) -> None:
    """Let in-flight pane loads land before the app shuts down: a load answered after the
    panes are gone raises NoMatches in the app's handler (a shutdown race of app.py)."""
    await wait_for(pilot, lambda: not any(w.is_running for w in app.workers if str(w.group).startswith("load-")),
                   "the pane loads to finish")
    await pilot.pause(0.1)


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    proc.wait(timeout=30)


async def test_attached_tui_shows_the_outage_and_resumes_without_loss_or_repeats(tmp_path):
    data, port = tmp_path / "daemon", _free_port()
    url = f"http://127.0.0.1:{port}"
    proc, _, macaroon = start_serve(data, port, SLOW_BLOCKS)
    seen: list[int] = []

    def hook(message) -> None:
        if isinstance(message, CoordinatorEvent):
            seen.append(message.event.id)

    cfg = load_config().with_overrides({"paths.data_dir": str(tmp_path / "client")})
    app = L402App(source_factory(cfg, url, macaroon), gpu=FixedGpu(False), host=FixedHost(),
                  export_dir=tmp_path / "exports", reload_delay_s=0.05)
    try:
        async with app.run_test(size=(120, 40), message_hook=hook) as pilot:
            await wait_for(pilot, lambda: app.source is not None, "attaching", timeout=20)
            async with HttpCoordinatorClient(url, macaroon_path=macaroon) as admin:
                bounty_id = (await admin.create_bounty(str(make_bounty(tmp_path / "guess")),
                                                       self_funded=True))["bounty"]["id"]
            status = app.main_screen.query_one("#status")
            bounties = lambda: {r.id for r in app.main_screen.query_one("#bounties-table").records}  # noqa: E731
            await wait_for(pilot, lambda: seen and bounty_id in bounties(), "the new bounty's events", timeout=20)

            _stop(proc)
            await wait_for(pilot, lambda: "event stream" in status.problem, "the outage in the status line")
            db = open_sync(data / "l402tui.sqlite")  # written while no daemon runs (an evaluator finishing)
            with db.conn:
                now = time.time()
                db["submissions"].insert({"id": "s_during", "bounty_id": bounty_id, "status": "REJECTED",
                                          "diff": "", "created_at": now, "updated_at": now})
                during = db["events"].insert({"kind": "submission.status", "subject_id": "s_during",
                                              "payload_json": json.dumps({"status": "REJECTED"}),
                                              "created_at": now}).last_pk
            db.close()

            proc, _, _ = start_serve(data, port, SLOW_BLOCKS)
            await wait_for(pilot, lambda: during in seen, "the event written during the outage", timeout=40)
            rows = lambda: {r.id for r in app.main_screen.query_one("#submissions-table").records}  # noqa: E731
            await wait_for(pilot, lambda: "s_during" in rows(), "the submission in its pane")
            assert seen == sorted(set(seen)), seen  # once each, in order
            await settle(pilot, app)
    finally:
        _stop(proc)
