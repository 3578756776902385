"""ApiSource attached (over HttpCoordinatorClient on loopback) gives the panes what the
in-process source gives them: evaluations, log lines, diffs, the review, live events."""

from __future__ import annotations

import asyncio
import time

import pytest

from l402tui.coordinator import payouts
from l402tui.coordinator.admin import ensure_admin_macaroon
from l402tui.coordinator.app import create_app
from l402tui.coordinator.client import HttpCoordinatorClient
from l402tui.coordinator.service import Coordinator
from l402tui.tui.api_source import ApiSource
from l402tui.tui.source import SourceError
from l402tui.tui.store_source import StoreSource
from tests.payouts.payouts_world import World


@pytest.fixture
async def attached(tmp_path):
    from aiohttp.test_utils import TestServer

    world = await World.open(tmp_path / "w", agents=1)
    coordinator = Coordinator(world.cfg, world.store, world.coordinator)
    srv = TestServer(create_app(coordinator, manage_lifecycle=False), host="127.0.0.1")
    await srv.start_server()
    token = (await ensure_admin_macaroon(world.store, world.cfg.data_dir)).read_text().strip()
    client = HttpCoordinatorClient(str(srv.make_url("/")), admin_macaroon=token)
    source = ApiSource(client, description="attached · test", on_close=client.close)
    yield world, coordinator, source
    await source.close()
    await srv.close()
    await world.close()


async def test_attached_source_reads_what_the_in_process_one_reads(attached):
    world, _, source = attached
    assert source.attached and source.has_eval_logs and source.can_act
    b = await world.bounty(funding="self")
    s = await world.submit(b, "agent-1")
    log = world.cfg.data_dir / "logs" / "e.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("repeat 0 starts\nscore 0.91\n")
    async with world.store.transaction() as txn:
        eid = await txn.insert("evaluations", {"bounty_id": b, "submission_id": s, "kind": "submission",
                                               "status": "DONE", "sandbox": "local", "created_at": time.time()})
        await txn.insert("eval_runs", {"evaluation_id": eid, "repeat": 0, "log_path": str(log)})

    local = StoreSource(world.store)  # the same database read directly, as in-process mode does
    assert await source.evaluations() == await local.evaluations()
    assert await source.eval_log(eid, 0) == await local.eval_log(eid, 0)
    lines, offset = await source.eval_log(eid, 0)
    assert lines[1:] == ["repeat 0 starts", "score 0.91"] and await source.eval_log(eid, offset) == ([], offset)
    assert await source.submission_diff(s) == await local.submission_diff(s)
    with pytest.raises(SourceError, match="eval log #404: no evaluation #404"):
        await source.eval_log(404, 0)
    with pytest.raises(SourceError, match="no submission 'nope'"):
        await source.submission_diff("nope")


async def test_attached_review_and_events_from_now_on(attached):
    world, coordinator, source = attached
    b = await world.bounty(funding="self")
    s = await world.submit(b, "agent-1")
    await world.verdict(s, "FLAGGED")
    await payouts.on_verdict(world.store, world.coordinator, world.cfg, s)
    history = await coordinator.last_event_id()
    assert history > 0

    events = source.events()  # None: from now on, not the history
    first = asyncio.ensure_future(events.__anext__())
    async def asked_where_now_is() -> None:
        while source.api.last_event_seen != history:
            await asyncio.sleep(0.01)

    await asyncio.wait_for(asked_where_now_is(), 10)
    result = await source.review_submission(s, "accept", note="the labels file was a fixture")
    assert result.message == f"{s}: not gaming: the stake is refunded"
    event = await asyncio.wait_for(first, 10)
    assert event.id > history and event.kind == "stake.sponsor_decision" and event.subject_id == s
    assert event.payload["note"] == "the labels file was a fixture" and event.payload["gaming_confirmed"] is False
    await events.aclose()
    rejected = await world.submit(b, "agent-1")
    await world.verdict(rejected, "REJECTED")
    with pytest.raises(SourceError, match=f"review {rejected}: submission {rejected} is REJECTED; only a FLAGGED"):
        await source.review_submission(rejected, "gaming")
