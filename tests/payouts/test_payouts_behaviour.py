"""What a sponsor, an agent or an operator notices: amounts, retries, refusals, refunds, halts."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from click.testing import CliRunner
from payouts_world import World

from l402tui.commands.wallet_ledger import ledger as ledger_cmd
from l402tui.coordinator import ledger, payouts
from l402tui.coordinator.errors import Conflict, Invalid
from l402tui.coordinator.payout_math import PayoutTermsError, split_payout
from l402tui.coordinator.payout_sender import PayoutsHalted


def test_split_follows_the_rule_and_rounds_down():
    s = split_payout(pool_msat=100_000_000, left_msat=100_000_000, improvement=0.02, target=0.05,
                     fee_percent=7.5, holdback_percent=20)
    assert (s.gross_msat, s.fee_msat, s.now_msat, s.holdback_msat) == (40_000_000, 3_000_000, 29_600_000, 7_400_000)
    capped = split_payout(pool_msat=100_000_000, left_msat=12_345_679, improvement=0.07, target=0.05,
                          fee_percent=7.5, holdback_percent=20)
    assert capped.gross_msat == 12_345_679 and capped.fee_msat == 925_925  # floor(925925.925)
    assert capped.fee_msat + capped.now_msat + capped.holdback_msat == capped.gross_msat
    assert split_payout(pool_msat=1, left_msat=0, improvement=0.5, target=0.05, fee_percent=7.5,
                        holdback_percent=20).gross_msat == 0
    with pytest.raises(PayoutTermsError, match="target improvement"):
        split_payout(pool_msat=1, left_msat=1, improvement=0.1, target=0, fee_percent=7.5, holdback_percent=20)


async def test_keysend_failure_is_retried_with_backoff_and_shown(world: World):
    store, ln, cfg = world.store, world.coordinator, world.cfg.with_overrides(
        {"coordinator.payout_retry_base_s": 30.0, "coordinator.payout_retry_max_s": 600.0})
    b = await world.bounty()
    s = await world.submit(b, "agent-2", keysend=True)
    await world.verdict(s, "ACCEPTED", 0.01)
    await world.net.inject_failure("agent-2", "no_route", count=2)
    summary = await payouts.on_accepted(store, ln, cfg, s)
    row = summary["payments"][0]
    assert row["status"] == "FAILED" and row["attempts"] == 1 and "no route" in row["last_error"]
    assert row["next_attempt_at"] > time.time() + 25  # backoff, not a hot loop
    await payouts.tick(store, ln, cfg)  # not due yet: nothing is sent
    assert (await payouts.payout_summary(store, s))["payments"][0]["attempts"] == 1
    await payouts.tick(store, ln, cfg, at=time.time() + 31)
    second = (await payouts.payout_summary(store, s))["payments"][0]
    assert second["status"] == "FAILED" and second["next_attempt_at"] > time.time() + 55  # doubled
    await payouts.tick(store, ln, cfg, at=time.time() + 100)
    assert (await payouts.payout_summary(store, s))["payments"][0]["status"] == "COMPLETE"
    assert await world.received("agent-2") == 14_800_000  # 20,000 gross - 7.5 % fee, 80 % of it
    failed = await store.fetchall("SELECT * FROM events WHERE kind = 'payment.failed'")
    assert len(failed) == 2


async def test_claim_for_the_wrong_amount_says_what_is_owed(world: World):
    store, ln, cfg = world.store, world.coordinator, world.cfg
    b = await world.bounty()
    s = await world.submit(b, "agent-1")
    await world.verdict(s, "ACCEPTED", 0.02)
    await payouts.on_accepted(store, ln, cfg, s)
    inv = await world.agents["agent-1"].create_invoice(1_000_000, "too little")
    with pytest.raises(Invalid, match="29600000 msat"):
        await payouts.claim(store, ln, cfg, s, inv.bolt11)
    with pytest.raises(Invalid, match="cannot be decoded"):
        await payouts.claim(store, ln, cfg, s, "lnbcrt1garbage")
    good = await world.agents["agent-1"].create_invoice(29_600_000, "exact")
    assert (await payouts.claim(store, ln, cfg, s, good.bolt11))["status"] == "COMPLETE"
    again = await payouts.claim(store, ln, cfg, s, good.bolt11)  # a retried HTTP request
    assert again["status"] == "COMPLETE"
    assert await world.received("agent-1") == 29_600_000  # once
    with pytest.raises(Conflict, match="nothing is owed"):
        other = await world.agents["agent-1"].create_invoice(29_600_000, "greedy")
        await payouts.claim(store, ln, cfg, s, other.bolt11)


async def test_closing_before_any_payout_cancels_the_funding_hold(world: World):
    store, ln, cfg = world.store, world.coordinator, world.cfg
    before = await world.balance("sponsor")
    b = await world.bounty()
    during = await world.balance("sponsor")
    assert during <= before - 107_500_000  # held
    async with store.transaction() as txn:
        await txn.execute("UPDATE bounties SET status = 'CLOSED' WHERE id = ?", (b,))
    await payouts.on_bounty_closed(store, ln, cfg, b)
    after = await world.balance("sponsor")
    assert after - during >= 107_500_000 and after <= before  # the HTLC failed back to the sponsor
    books = await world.books(b)
    assert books.refunded == books.funded == 107_500_000 and books.problems == []
    assert (await store.fetchone("SELECT status FROM bounties WHERE id = ?", (b,)))["status"] == "SETTLED"


async def test_stability_evaluation_failing_three_times_forfeits_with_the_reason(world: World):
    store, ln, cfg = world.store, world.coordinator, world.cfg
    b = await world.bounty()
    s = await world.submit(b, "agent-2", keysend=True)
    await world.verdict(s, "ACCEPTED", 0.02)
    await payouts.on_accepted(store, ln, cfg, s)
    later = time.time() + 61
    sets = []
    for _ in range(3):
        await payouts.tick(store, ln, cfg, at=later)
        row = await store.fetchone("SELECT heldout_set FROM evaluations WHERE kind = 'stability' AND status = 'QUEUED'")
        sets.append(row["heldout_set"])
        await world.finish_stability(s, {}, "FAILED")
    await payouts.tick(store, ln, cfg, at=later)
    assert sets == [1, 0, 1]  # rotated away from the set it was accepted on (0)
    sub = await store.fetchone("SELECT status, reasons FROM submissions WHERE id = ?", (s,))
    assert sub["status"] == "HOLDBACK_FORFEITED"
    assert "failed 3 times" in json.loads(sub["reasons"])[0]
    books = await world.books(b)
    assert books.held_back == 0 and books.pool_left == 107_500_000 - 40_000_000 + 7_400_000


async def test_broken_books_halt_payouts_loudly_until_resumed(world: World):
    store, ln, cfg = world.store, world.coordinator, world.cfg
    b = await world.bounty()
    s = await world.submit(b, "agent-1")
    await world.verdict(s, "ACCEPTED", 0.02)
    async with store.transaction() as txn:  # someone edits the database by hand: money from nowhere
        await txn.insert("ledger_entries", {"txn_id": "hand-edit", "account": ledger.paid(s), "amount_msat": 5,
                                            "bounty_id": b, "created_at": time.time()})
    with pytest.raises(ledger.InvariantBroken, match="does not balance"):
        await payouts.on_accepted(store, ln, cfg, s)
    assert "does not balance" in await ledger.halted_reason(store)
    assert await store.fetchone("SELECT 1 FROM events WHERE kind = 'payout.allocated'") is None  # rolled back
    with pytest.raises(PayoutsHalted):
        await payouts.on_accepted(store, ln, cfg, s)
    assert (await payouts.tick(store, ln, cfg))["halted"]
    with pytest.raises(ledger.InvariantBroken):
        await ledger.resume(store, "looked at it")  # still broken: refused
    async with store.transaction() as txn:
        await txn.execute("DELETE FROM ledger_entries WHERE txn_id = 'hand-edit'")
    await ledger.resume(store, "removed the hand edit")
    assert (await payouts.on_accepted(store, ln, cfg, s))["payments"][0]["amount_msat"] == 29_600_000


def test_wallet_ledger_prints_the_books(tmp_path):
    async def setup():
        w = await World.open(tmp_path)
        b = await w.bounty()
        s = await w.submit(b, "agent-2", keysend=True)
        await w.verdict(s, "ACCEPTED", 0.02)
        await payouts.on_accepted(w.store, w.coordinator, w.cfg, s)
        await w.close()
        return w.cfg, b

    cfg, b = asyncio.run(setup())
    result = CliRunner().invoke(ledger_cmd, ["--bounty", b], obj=cfg)
    assert result.exit_code == 0, result.output
    assert "funded" in result.output and "107,500 sat" in result.output
    assert "29,600 sat" in result.output and "7,400 sat" in result.output and "books balance" in result.output
    from l402tui.cli import main  # the real entry point: `l402tui --data-dir D wallet ledger`

    via_cli = CliRunner().invoke(main, ["--data-dir", str(tmp_path), "wallet", "ledger", "--bounty", b])
    assert via_cli.exit_code == 0 and via_cli.output == result.output
    data = json.loads(CliRunner().invoke(ledger_cmd, ["--json", "--entries"], obj=cfg).output)
    assert data["bounties"][0]["books"]["paid"] == 29_600_000
    assert sum(e["amount_msat"] for e in data["entries"]) == 0


async def test_close_waits_for_submissions_still_being_judged(world: World):
    store, ln, cfg = world.store, world.coordinator, world.cfg
    b = await world.bounty()
    late = await world.submit(b, "agent-1")  # submitted before the deadline, still QUEUED at the close
    async with store.transaction() as txn:
        await txn.execute("UPDATE bounties SET status = 'CLOSED' WHERE id = ?", (b,))
    await payouts.on_bounty_closed(store, ln, cfg, b)
    assert (await world.books(b)).refunded == 0  # nothing refunded while a verdict is pending
    await world.verdict(late, "ACCEPTED", 0.02)
    summary = await payouts.on_accepted(store, ln, cfg, late)
    assert summary["payments"][0]["amount_msat"] == 29_600_000  # paid in full from the pool
    books = await world.books(b)
    assert books.refund_pending == 107_500_000 - 40_000_000 and books.problems == []


def test_stability_judge_compares_with_the_baseline_on_the_same_set():
    from l402tui.coordinator.stability import composite_gain, judge

    summary = {"target": {"kind": "relative"}, "metrics": [{"name": "error", "direction": "minimize", "weight": 1}]}
    gain = composite_gain(summary, {"error": 1.078}, {"error": 1.10})
    assert round(gain, 6) == 0.02
    held = judge(improvement=0.02, gain_when_accepted=0.02, gain_now=gain, tolerance=0.25, heldout_set=1)
    assert held.holds and "2.0000%" in held.reason
    lost = judge(improvement=0.015, gain_when_accepted=0.0347, gain_now=gain, tolerance=0.25, heldout_set=1)
    assert not lost.holds and "3.0950%" in lost.reason  # 3.47 % - 25 % of its own 1.5 %
    with pytest.raises(KeyError, match="error"):
        composite_gain(summary, {}, {"error": 1.0})


async def test_a_verdict_without_an_improvement_blocks_only_itself(world: World):
    store, ln, cfg = world.store, world.coordinator, world.cfg
    b = await world.bounty()
    bad = await world.submit(b, "agent-1", keysend=True)
    good = await world.submit(b, "agent-2", keysend=True)
    async with store.transaction() as txn:
        await txn.execute("UPDATE submissions SET status = 'ACCEPTED', verdict_json = '{}' WHERE id = ?", (bad,))
    with pytest.raises(PayoutTermsError, match="no numeric 'improvement'"):
        await payouts.on_accepted(store, ln, cfg, bad)
    await world.verdict(good, "ACCEPTED", 0.02)
    await payouts.tick(store, ln, cfg)  # the service's clock: retries the bad one, pays the good one
    assert await world.received("agent-2") == 29_600_000
    assert await world.received("agent-1") == 0
