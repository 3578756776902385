"""The admin routes the attached TUI needs (evaluation logs, diffs, holdback timers, the review
of a flagged submission, payout repairs), over a real loopback socket, a real SQLite store and
the sim network, driven through HttpCoordinatorClient."""

from __future__ import annotations

import json
import re
import time

import aiohttp
import pytest

from l402tui.coordinator import ledger, payouts
from l402tui.coordinator.admin import ensure_admin_macaroon
from l402tui.coordinator.admin_api import OPERATOR_ROUTES
from l402tui.coordinator.app import create_app
from l402tui.coordinator.client import AdminUnauthorized, HttpCoordinatorClient
from l402tui.coordinator.errors import Conflict, Invalid, NotFound
from l402tui.coordinator.operator_reads import LOG_PAGE_MAX, read_log_segments
from l402tui.coordinator.service import Coordinator
from tests.payouts.payouts_world import World


@pytest.fixture
async def world(tmp_path):
    w = await World.open(tmp_path / "w")
    yield w
    await w.close()


@pytest.fixture
async def served(world):
    """The HTTP app over a coordinator on the world's store and sim node (no background ticks:
    the tests move the payouts clock themselves)."""
    from aiohttp.test_utils import TestServer

    coordinator = Coordinator(world.cfg, world.store, world.coordinator)
    srv = TestServer(create_app(coordinator, manage_lifecycle=False), host="127.0.0.1")
    await srv.start_server()
    token = (await ensure_admin_macaroon(world.store, world.cfg.data_dir)).read_text().strip()
    client = HttpCoordinatorClient(str(srv.make_url("/")), admin_macaroon=token)
    yield client
    await client.close()
    await srv.close()


def _concrete(path: str) -> str:
    return re.sub(r"{(\w+)}", lambda m: "1" if m.group(1) == "id" and "evaluations" in path else "x_1", path)


@pytest.mark.parametrize("route", OPERATOR_ROUTES, ids=lambda r: f"{r['method']} {r['path']}")
async def test_every_operator_route_needs_the_admin_macaroon(served, route):
    url = served.base_url + _concrete(route["path"])
    async with aiohttp.ClientSession() as http:
        for headers in ({}, {"Authorization": "Bearer AgEBbogus"}, {"Authorization": "L402 abc:" + "0" * 64}):
            async with http.request(route["method"], url, headers=headers, json={}) as r:
                assert r.status == 401, (route["path"], headers, await r.text())
                assert "admin" in (await r.json())["message"]
    bad = HttpCoordinatorClient(served.base_url, admin_macaroon="AgEBbogus")
    with pytest.raises(AdminUnauthorized):
        await bad.evaluations()
    await bad.close()


async def _evaluation(world: World, bounty_id: str, submission_id: str | None, status: str,
                      logs: list[bytes]) -> tuple[int, list[tuple[int, object]]]:
    t = time.time()
    async with world.store.transaction() as txn:
        eid = await txn.insert("evaluations", {"bounty_id": bounty_id, "submission_id": submission_id,
                                               "kind": "submission", "status": status, "sandbox": "bwrap",
                                               "created_at": t})
    paths = []
    for repeat, data in enumerate(logs):
        path = world.cfg.data_dir / "logs" / f"eval-{eid}-{repeat}.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        paths.append((repeat, path))
        async with world.store.transaction() as txn:
            await txn.insert("eval_runs", {"evaluation_id": eid, "repeat": repeat, "log_path": str(path)})
    return eid, paths


async def test_eval_logs_arrive_in_capped_pages_of_whole_lines(world, served):
    b = await world.bounty(funding="self")
    s = await world.submit(b, "agent-1")
    lines = [f"step {i:05d} loss {1 / (i + 1):.6f}".encode() for i in range(3000)]
    done_id, done_paths = await _evaluation(world, b, s, "DONE", [b"\n".join(lines[:1800]) + b"\n",
                                                                  b"\n".join(lines[1800:])])  # no final newline
    running_id, _ = await _evaluation(world, b, None, "RUNNING", [b"epoch 1\nepoch 2\nepo"])

    listed = await served.evaluations()
    assert [e["id"] for e in listed] == [running_id, done_id]  # the running one first: it is being watched
    assert listed[1]["submission_id"] == s and listed[1]["sandbox"] == "bwrap"
    assert [e["id"] for e in await served.evaluations(submission_id=s)] == [done_id]

    got, offset, pages = [], 0, 0
    while True:
        page = await served.eval_log(done_id, offset, max_bytes=4096)
        assert page["next_offset"] - offset <= 4096
        if not page["lines"]:
            break
        got += page["lines"]
        offset, pages = page["next_offset"], pages + 1
    assert pages > 10
    assert got == read_log_segments(done_paths, 0, True, 10**9)[0]  # the same lines the in-process TUI reads
    assert [x for x in got if not x.startswith("──")] == [x.decode() for x in lines]

    # A running evaluation's unfinished last line waits until it is complete.
    page = await served.eval_log(running_id, 0)
    assert page["lines"][1:] == ["epoch 1", "epoch 2"] and not page["finished"]

    big = await _evaluation(world, b, None, "DONE", [(b"y" * 99 + b"\n") * 15_000])
    page = await served.eval_log(big[0], 0, max_bytes=50 * 1024 * 1024)
    assert 0 < page["next_offset"] <= LOG_PAGE_MAX  # one response never carries more than the cap

    with pytest.raises(NotFound, match="no evaluation #999"):
        await served.eval_log(999, 0)
    with pytest.raises(Invalid, match="'offset' must be between"):
        await served.eval_log(done_id, -5)
    async with aiohttp.ClientSession() as http:
        async with http.get(served.base_url + "/api/v1/admin/evaluations/abc/log",
                            headers=served._headers()) as r:
            assert r.status == 422 and "not a number" in (await r.json())["message"]


async def test_a_submissions_diff_is_served_to_the_sponsor(world, served):
    b = await world.bounty(funding="self")
    s = await world.submit(b, "agent-1")
    diff = "--- a/model.py\n+++ b/model.py\n@@ -1 +1 @@\n-GUESS = 0.5\n+GUESS = 3.0\n"
    async with world.store.transaction() as txn:
        await txn.execute("UPDATE submissions SET diff = ? WHERE id = ?", (diff, s))
    assert await served.submission_diff(s) == diff
    with pytest.raises(NotFound, match="no submission 'nope'"):
        await served.submission_diff("nope")


async def test_holdback_timers_show_release_time_amount_and_state(world, served):
    store, ln, cfg = world.store, world.coordinator, world.cfg
    b = await world.bounty()
    s = await world.submit(b, "agent-1")
    await world.verdict(s, "ACCEPTED", 0.02)
    before = time.time()
    await payouts.on_accepted(store, ln, cfg, s)
    [timer] = await served.holdback_timers()
    held = await ledger.balance(store, ledger.holdback(b), submission_id=s)
    assert held > 0 and timer["amount_msat"] == held and timer["held_msat"] == held
    assert timer["state"] == "HELD" and timer["submission_id"] == s and timer["bounty_id"] == b
    assert before + 60 <= timer["release_at"] <= time.time() + 60  # coordinator.holdback_seconds

    # The attached ledger pane shows the reservation with its release time.
    from l402tui.tui.api_source import ApiSource
    from l402tui.tui.store_source import fmt_time

    source = ApiSource(served, description="attached · test")
    rows = [r for r in await source.ledger() if r.kind == "holdback" and r.submission_id == s]
    assert rows and rows[0].status == "HELD" and rows[0].detail == f"release {fmt_time(timer['release_at'])}"

    later = time.time() + 61  # the stability re-evaluation holds: the 20 % is released
    await payouts.tick(store, ln, cfg, at=later)
    await world.finish_stability(s, {"error": 0.9})
    await payouts.tick(store, ln, cfg, at=later)
    [timer] = await served.holdback_timers(bounty_id=b)
    assert timer["state"] == "RELEASED" and timer["held_msat"] == 0 and timer["amount_msat"] == held
    assert timer["done_at"] is not None
    assert await served.holdback_timers(bounty_id="other") == []


async def test_the_sponsor_reviews_a_flagged_submission_over_http(world, served):
    store, ln, cfg = world.store, world.coordinator, world.cfg
    b = await world.bounty(stake_sats=20)
    gamer = await world.submit(b, "agent-1", stake_sats=20)
    honest = await world.submit(b, "agent-2", stake_sats=20)
    for s in (gamer, honest):
        await world.verdict(s, "FLAGGED")
        await payouts.on_verdict(store, ln, cfg, s)  # the stake waits for the sponsor

    result = await served.review_submission(gamer, "gaming", note="reads heldout/a/labels")
    assert result["gaming_confirmed"] is True and result["submission"]["id"] == gamer
    assert await ledger.posted(store, f"stake_forfeit:{gamer}")
    decision = await store.fetchone("SELECT payload_json FROM events WHERE kind = 'stake.sponsor_decision' "
                                    "AND subject_id = ?", (gamer,))
    assert json.loads(decision["payload_json"])["note"] == "reads heldout/a/labels"

    assert (await served.review_submission(honest, "accept"))["gaming_confirmed"] is False
    assert await ledger.posted(store, f"stake_return:{honest}")
    assert await store.fetchone("SELECT 1 FROM events WHERE kind = 'stake.refunded' AND subject_id = ?", (honest,))

    ok = await world.submit(b, "agent-3")
    await world.verdict(ok, "REJECTED")
    with pytest.raises(Conflict, match="only a FLAGGED one"):
        await served.review_submission(ok, "gaming")
    with pytest.raises(Invalid, match="'decision' must be one of accept, gaming"):
        await served.review_submission(gamer, "maybe")
    with pytest.raises(NotFound):
        await served.review_submission("s-nope", "accept")


async def test_payout_repairs_halt_resume_unknown_and_refund(world, served):
    store, ln, cfg = world.store, world.coordinator, world.cfg
    assert await served.payouts_state() == {"halted": None, "unknown_payments": []}
    b = await world.bounty()
    s = await world.submit(b, "agent-1", keysend=True)
    await world.verdict(s, "ACCEPTED", 0.02)
    async with store.transaction() as txn:  # a hand edit: money from nowhere halts payouts
        await txn.insert("ledger_entries", {"txn_id": "hand-edit", "account": ledger.paid(s), "amount_msat": 5,
                                            "bounty_id": b, "created_at": time.time()})
    with pytest.raises(ledger.InvariantBroken):
        await payouts.on_accepted(store, ln, cfg, s)
    assert "does not balance" in (await served.payouts_state())["halted"]
    with pytest.raises(Conflict) as refused:
        await served.resume_payouts("looked at it")
    assert refused.value.code == "books_do_not_balance" and refused.value.details["problems"]
    with pytest.raises(Invalid, match="'note'"):
        await served.resume_payouts("  ")
    async with store.transaction() as txn:
        await txn.execute("DELETE FROM ledger_entries WHERE txn_id = 'hand-edit'")
    assert await served.resume_payouts("removed the hand edit") == {"halted": None, "resumed": True}
    assert (await served.payouts_state())["halted"] is None

    summary = await payouts.on_accepted(store, ln, cfg, s)
    key = summary["payments"][0]["idempotency_key"]
    with pytest.raises(Conflict, match="not UNKNOWN"):
        await served.resolve_payment(key, sent=True)
    async with store.transaction() as txn:  # as a crash mid-send leaves it when the node cannot tell
        await txn.execute("UPDATE payments SET status = 'UNKNOWN' WHERE idempotency_key = ?", (key,))
    assert (await served.payouts_state())["unknown_payments"] == [key]
    resolved = await served.resolve_payment(key, sent=False)  # the key has a ':' in it: quoted in the path
    assert resolved["status"] == "FAILED"
    with pytest.raises(NotFound):
        await served.resolve_payment("payout:nope", sent=True)

    with pytest.raises(Conflict, match="nothing is owed to the sponsor"):
        invoice = await world.sponsor.create_invoice(1000, "refund")
        await served.claim_refund(b, invoice.bolt11)
    with pytest.raises(Invalid, match="cannot be decoded"):
        await served.claim_refund(b, "lnbcrt1garbage")


async def test_a_daemon_without_a_route_is_named_as_too_old(served):
    with pytest.raises(NotFound) as missing:
        await served._call("GET", "/api/v1/admin/no-such-route")
    assert missing.value.code == "route_missing" and "older l402tui" in missing.value.message
