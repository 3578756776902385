"""A sponsor who is not the operator, end to end over HTTP on the sim network: three parties
(the coordinator's node, the sponsor's, an agent's), a real SQLite store, a real loopback
socket, the real evaluation worker (local sandbox) for the baseline and the paid submission."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import pytest

from l402tui.coordinator import submissions
from l402tui.coordinator.errors import NotFound
from l402tui.coordinator.sponsor_client import SponsorClient, buy_credential, pack_folder
from l402tui.l402.client import L402Client
from tests.coordinator.conftest import diff_text, make_bounty, url

PAID_POSTING = {"policy.who_may_post": "anyone_who_pays", "policy.posting_fee_sats": 1000,
                "evaluation.sandbox": "local", "evaluation.allow_unsandboxed": True}


@pytest.fixture
def cfg(cfg):
    return cfg.with_overrides(PAID_POSTING)


async def _until(check, what: str, tries: int = 400):
    for _ in range(tries):  # up to 20 s on a loaded machine
        value = await check()
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def _finish_flagged(coordinator, submission_id: str) -> None:
    """The evaluation queue's rows for a run that matched the public canaries (hard-coded answers)."""
    eval_id = await coordinator.store.scalar("SELECT id FROM evaluations WHERE submission_id = ?", (submission_id,))
    async with coordinator.store.transaction() as txn:
        await txn.execute("UPDATE evaluations SET status = 'DONE', metrics_json = ?, spread_json = '{}', "
                          "finished_at = ? WHERE id = ?", (json.dumps({"error": 0.0}), time.time(), eval_id))
        await txn.insert("eval_runs", {"evaluation_id": eval_id, "repeat": 0,
                                       "metrics_json": json.dumps({"error": 0.0, "canary_matches": 2})})


async def test_a_sponsor_pays_to_post_funds_reviews_and_closes(server, coordinator, net, tmp_path):
    from l402tui.evaluation.worker import run_worker

    base = url(server, "/").rstrip("/")
    sponsor_node, agent = net.node("sponsor"), net.node("agent-1")
    coordinator_node = net.node("coordinator")
    start_balance = (await coordinator_node.status()).balance_msat

    # 1. The sponsor pays the posting fee over L402 and uploads its folder as a tarball.
    credential, posted = await buy_credential(base, sponsor_node, make_bounty(tmp_path / "mine"), spend_cap_sats=1500)
    bounty_id, sponsor_id = posted["bounty"]["id"], posted["sponsor_id"]
    assert posted["bounty"]["status"] == "AWAITING_FUNDING" and posted["funding"]["amount_sats"] == 107_500
    sponsor = SponsorClient(base, credential=credential)
    assert (await sponsor.whoami())["posts_left"] == 0  # one fee, one bounty

    # The operator's books: the fee invoice is paid and booked to the coordinator's fees.
    fee = await coordinator.store.fetchone("SELECT * FROM invoices WHERE kind = 'posting_fee'")
    assert fee["status"] == "SETTLED" and fee["amount_msat"] == 1_000_000
    booked = await coordinator.store.fetchall("SELECT account, amount_msat FROM ledger_entries WHERE txn_id = ?",
                                              (f"posting_fee:{fee['payment_hash']}",))
    assert {(r["account"], r["amount_msat"]) for r in booked} == {("fees:coordinator", 1_000_000),
                                                                  (f"posting_fee:{sponsor_id}", -1_000_000)}
    admin = {"Authorization": f"Bearer {server.admin_token}"}
    async with aiohttp.ClientSession() as http:
        async with http.get(url(server, "/api/v1/admin/ledger"), headers=admin) as r:
            operator_books = await r.json()
    assert any(i["kind"] == "posting_fee" and i["status"] == "SETTLED" for i in operator_books["invoices"])

    # 2. A second upload with the same credential needs a second fee: 402, a token for the same sponsor.
    async with aiohttp.ClientSession() as http:
        async with http.post(url(server, "/api/v1/sponsor/bounties"), data=pack_folder(make_bounty(tmp_path / "2")),
                             headers={"Content-Type": "application/gzip",
                                      "Authorization": f"L402 {credential}"}) as r:
            again = await r.json()
            assert r.status == 402 and again["reason"] == "post_used" and again["sponsor_id"] == sponsor_id

    # 3. The sponsor funds the hold invoice from its own node; the bounty opens.
    funding = await sponsor.funding(bounty_id)
    assert funding["status"] == "OPEN"
    await sponsor_node.pay(funding["invoice"])
    await _until(lambda: _status(sponsor, bounty_id, "OPEN"), "the funded bounty to open")

    # 4. An agent pays to submit; the real worker measures the baseline and the diff; the agent is paid.
    half = diff_text().replace("OFFSET = 1", "OFFSET = 2")  # a third better: the pool is not spent
    async with L402Client(agent, spend_cap_sats=100) as client:
        sub = await client.post(url(server, f"/api/v1/bounties/{bounty_id}/submissions"),
                                json={"diff": half, "claimed_score": 2.0})
        assert sub.status == 202, sub.text
        paid_id = sub.json()["id"]
        await run_worker(coordinator.store, coordinator.cfg, idle_exit=True)
        await submissions.reconcile_evaluations(coordinator)

        async def owed():
            status = (await client.get(url(server, f"/api/v1/submissions/{paid_id}"))).json()
            return [p for p in status.get("payouts", {}).get("payments", []) if p["status"] == "AWAITING_CLAIM"]

        payment = (await _until(owed, "the payout to be owed"))[0]
        invoice = await agent.create_invoice(payment["amount_msat"], "my payout")
        token = client.tokens[(base, f"/api/v1/bounties/{bounty_id}/submissions")]
        async with aiohttp.ClientSession() as http:
            async with http.post(url(server, f"/api/v1/submissions/{paid_id}/claim"), json={"invoice": invoice.bolt11},
                                 headers={"Authorization": f"L402 {token}"}) as r:
                assert r.status == 200, await r.text()

        async def settled():
            return (await agent.lookup_invoice(invoice.payment_hash)).state.value == "SETTLED"

        await _until(settled, "the agent's payout to arrive")

        # The sponsor follows the baseline, sees the verdict in full and reads the run's whole log.
        view = await sponsor.get_bounty(bounty_id)
        assert view["baseline"]["metrics"]["error"] == 3.0
        detail = await sponsor.submission_detail(paid_id)
        assert detail["status"] in ("ACCEPTED", "PAID_PARTIAL") and detail["verdict"]["metrics"]["error"] == 2.0
        evaluation = [e for e in await sponsor.evaluations(bounty_id=bounty_id) if e["submission_id"] == paid_id][0]
        log_page = await sponsor.eval_log(evaluation["id"])
        assert "next_offset" in log_page and isinstance(log_page["lines"], list)
        assert "+OFFSET = 2" in await sponsor.submission_diff(paid_id)

        # 5. A second submission matches the public canaries: FLAGGED, and the sponsor confirms gaming.
        gamed = await client.post(url(server, f"/api/v1/bounties/{bounty_id}/submissions"),
                                  json={"diff": diff_text().replace("OFFSET = 1", "OFFSET = 0")})
        assert gamed.status == 202, gamed.text
        flagged_id = gamed.json()["id"]
    await _finish_flagged(coordinator, flagged_id)
    await submissions.reconcile_evaluations(coordinator)
    assert [s["status"] for s in await sponsor.list_submissions(bounty_id) if s["id"] == flagged_id] == ["FLAGGED"]
    reviewed = await sponsor.review_submission(flagged_id, "gaming", note="hard-codes the public answers")
    assert reviewed["gaming_confirmed"] is True

    # 6. The sponsor closes the bounty and gives an invoice for what is left of its pool.
    closed = await sponsor.close_bounty(bounty_id)
    assert closed["status"] in ("CLOSED", "SETTLED")

    async def refund_owed():
        books = await sponsor.ledger_page(bounty_id)
        return [p for p in books["payments"] if p["purpose"] == "refund" and p["status"] == "AWAITING_CLAIM"]

    refund = (await _until(refund_owed, "the refund to be owed"))[0]
    refund_invoice = await sponsor_node.create_invoice(refund["amount_msat"], "my refund")
    await sponsor.claim_refund(bounty_id, refund_invoice.bolt11)

    async def refunded():
        return (await sponsor_node.lookup_invoice(refund_invoice.payment_hash)).state.value == "SETTLED"

    await _until(refunded, "the refund to arrive")
    # The operator kept its posting fee, its 7.5 % coordinator fee on the payout and the L402 fees.
    assert (await coordinator_node.status()).balance_msat > start_balance + 1_000_000

    # The sponsor's books are its own: no agent's L402 fee invoice, its posting fee included.
    books = await sponsor.ledger_page()
    kinds = {i["kind"] for i in books["invoices"]}
    assert "l402" not in kinds and {"posting_fee", "funding"} <= kinds
    events = await sponsor.events_after(0, 1000)
    assert events and all(e["kind"].split(".")[0] not in ("l402", "admin") for e in events)
    await sponsor.close()


async def _status(sponsor: SponsorClient, bounty_id: str, want: str) -> bool:
    return (await sponsor.get_bounty(bounty_id))["status"] == want


async def test_another_sponsors_bounty_is_not_there(server, coordinator, net, tmp_path):
    base = url(server, "/").rstrip("/")
    mine, posted = await buy_credential(base, net.node("sponsor"), make_bounty(tmp_path / "a"), spend_cap_sats=1500)
    theirs, other = await buy_credential(base, net.node("agent-1"), make_bounty(tmp_path / "b"), spend_cap_sats=1500)
    me, them = SponsorClient(base, credential=mine), SponsorClient(base, credential=theirs)
    their_bounty = other["bounty"]["id"]
    assert [b["id"] for b in await me.list_bounties()] == [posted["bounty"]["id"]]
    for call in (me.get_bounty(their_bounty), me.funding(their_bounty), me.close_bounty(their_bounty),
                 me.cancel_bounty(their_bounty), me.list_submissions(their_bounty), me.holdback_timers(their_bounty),
                 me.ledger_page(their_bounty), me.evaluations(bounty_id=their_bounty)):
        with pytest.raises(NotFound) as refused:
            await call
        assert "among this sponsor's bounties" in refused.value.message
    baseline = await coordinator.store.scalar("SELECT id FROM evaluations WHERE bounty_id = ?", (their_bounty,))
    with pytest.raises(NotFound):
        await me.eval_log(baseline)
    assert (await them.get_bounty(their_bounty))["id"] == their_bounty
    # Their events never reach me.
    assert not [e for e in await me.events_after(0, 1000) if their_bounty in json.dumps(e)]
    await me.close()
    await them.close()


async def test_a_paid_posting_fee_is_booked_even_if_the_sponsor_never_comes_back(server, coordinator, net):
    """The fee is the operator's once paid: the invoice stream books it, without the credential."""
    async with aiohttp.ClientSession() as http:
        async with http.post(url(server, "/api/v1/sponsor/bounties")) as r:
            assert r.status == 402
            challenge = await r.json()
    await net.node("sponsor").pay(challenge["invoice"])
    txn_id = f"posting_fee:{challenge['payment_hash']}"

    async def booked() -> bool:
        return bool(await coordinator.store.scalar("SELECT COUNT(*) FROM ledger_entries WHERE txn_id = ?", (txn_id,)))

    await _until(booked, "the fee to be booked from the invoice stream")
    await coordinator.reconcile_invoices()  # a second sight of the same payment books nothing more
    assert await coordinator.store.scalar("SELECT COUNT(*) FROM ledger_entries WHERE txn_id = ?", (txn_id,)) == 2
