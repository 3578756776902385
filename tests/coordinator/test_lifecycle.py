"""Bounty lifecycle through the service: creation, hold funding, cancel, expiry, deadline close."""

from __future__ import annotations

import asyncio
import time

import pytest

from l402tui.bounty import load_bounty
from l402tui.bounty.commitment import verify
from l402tui.bounty.package import build_package
from l402tui.coordinator.errors import Conflict, Invalid
from l402tui.lightning.backend import PaymentState

from tests.coordinator.conftest import make_bounty


async def _events(coord, kind=None):
    rows = await coord.events_after(0, 1000)
    return [e for e in rows if kind is None or e["kind"] == kind]


async def test_self_funded_bounty_opens_with_commitments_and_pending_baseline(coordinator, bounty_dir):
    result = await coordinator.create_bounty(bounty_dir, self_funded=True)
    bounty = result["bounty"]
    assert result["funding"] is None
    assert bounty["status"] == "OPEN" and bounty["funding_mode"] == "self"
    assert bounty["baseline"] == {"status": "pending"}
    assert bounty["pool_sats"] == bounty["pool_left_sats"] == 100_000
    # The stored package is byte-identical to packing the sponsor's folder.
    assert bounty["package"]["sha256"] == build_package(load_bounty(bounty_dir)).sha256
    assert [c["salt"] for c in bounty["heldout_commitments"]] == [None, None]
    queued = await coordinator.store.fetchall("SELECT kind, status, heldout_set FROM evaluations")
    assert queued == [{"kind": "baseline", "status": "QUEUED", "heldout_set": 0}]
    statuses = [e["payload"]["status"] for e in await _events(coordinator, "bounty.status")]
    assert statuses == ["OPEN"]
    assert [b["id"] for b in await coordinator.list_bounties()] == [bounty["id"]]


async def test_invalid_bounty_reports_every_problem(coordinator, bounty_dir):
    toml = (bounty_dir / "bounty.toml").read_text()
    (bounty_dir / "bounty.toml").write_text(toml.replace('"minimize"', '"min"').replace("pool_sats = 100000",
                                                                                        "pool_sats = -5"))
    with pytest.raises(Invalid) as err:
        await coordinator.create_bounty(bounty_dir, self_funded=True)
    problems = err.value.details["problems"]
    assert any("direction" in p for p in problems) and any("pool_sats" in p for p in problems)
    assert await coordinator.list_bounties(include_all=True) == []


async def test_hold_funding_opens_when_accepted_and_cancel_refunds(coordinator, bounty_dir, net):
    sponsor = net.node("sponsor")
    before = (await sponsor.status()).balance_msat
    result = await coordinator.create_bounty(bounty_dir)
    bounty_id = result["bounty"]["id"]
    assert result["bounty"]["status"] == "AWAITING_FUNDING"
    funding = result["funding"]
    assert funding["amount_sats"] == 100_000 + 7_500  # pool + 7.5 % coordinator fee
    assert await coordinator.list_bounties() == []  # not visible to agents until funded
    await coordinator.start()
    payment = await sponsor.pay(funding["invoice"])
    assert payment.state is PaymentState.PENDING  # held, not settled
    for _ in range(300):  # up to 15 s on a loaded machine
        if (await coordinator.get_bounty(bounty_id))["status"] == "OPEN":
            break
        await asyncio.sleep(0.05)
    assert (await coordinator.get_bounty(bounty_id))["status"] == "OPEN"
    # Replaying the update changes nothing.
    await coordinator.apply_invoice_state(funding["payment_hash"], "ACCEPTED")
    assert len([e for e in await _events(coordinator, "bounty.status") if e["subject_id"] == bounty_id]) == 2
    cancelled = await coordinator.cancel_bounty(bounty_id)
    assert cancelled["status"] == "CANCELED"
    assert (await sponsor.lookup_payment(funding["payment_hash"])).state is PaymentState.FAILED
    assert (await sponsor.status()).balance_msat == before  # the sponsor has every msat back


async def test_deadline_beyond_hold_window_is_refused_unless_self_funded(coordinator, tmp_path):
    far = make_bounty(tmp_path / "far", hours=24 * 30)
    with pytest.raises(Conflict) as err:
        await coordinator.create_bounty(far)
    assert err.value.code == "beyond_hold_window" and "self-funded" in err.value.message
    assert (await coordinator.create_bounty(far, self_funded=True))["bounty"]["status"] == "OPEN"


async def test_unpaid_funding_expires_to_canceled(coordinator, bounty_dir):
    bounty_id = (await coordinator.create_bounty(bounty_dir))["bounty"]["id"]
    assert await coordinator.run_due_timers(now=time.time()) == 0
    await coordinator.run_due_timers(now=time.time() + 2 * 3600)
    bounty = await coordinator.get_bounty(bounty_id)
    assert bounty["status"] == "CANCELED"
    funding = await coordinator.funding(bounty_id)
    assert funding["status"] == "CANCELED"


async def test_deadline_closes_and_reveals_salt_that_verifies(coordinator, bounty_dir):
    bounty_id = (await coordinator.create_bounty(bounty_dir, self_funded=True))["bounty"]["id"]
    await coordinator.run_due_timers(now=time.time() + 3600)
    bounty = await coordinator.get_bounty(bounty_id)
    # Nothing was paid, so payouts refunds the (self-funded) pool at once and settles it.
    assert bounty["status"] in ("CLOSED", "SETTLED")
    for c, name in zip(bounty["heldout_commitments"], ("heldout/a", "heldout/b")):
        assert c["salt"] is not None
        assert verify(bounty_dir / name, c["salt"], c["commitment"]).ok
    assert (await coordinator.close_bounty(bounty_id))["status"] == bounty["status"]  # idempotent
    with pytest.raises(Conflict):
        await coordinator.cancel_bounty(bounty_id)


async def test_funding_hold_auto_cancelled_near_htlc_expiry_cancels_the_bounty(coordinator, bounty_dir, net):
    sponsor = net.node("sponsor")
    before = (await sponsor.status()).balance_msat
    result = await coordinator.create_bounty(bounty_dir)
    bounty_id = result["bounty"]["id"]
    await sponsor.pay(result["funding"]["invoice"])
    await coordinator.reconcile_invoices()
    assert (await coordinator.get_bounty(bounty_id))["status"] == "OPEN"
    await net.mine(144)  # the sim cancels the held HTLC a safety margin before it would expire
    await coordinator.reconcile_invoices()
    assert (await coordinator.get_bounty(bounty_id))["status"] == "CANCELED"
    assert (await sponsor.status()).balance_msat == before


async def test_event_follower_replays_then_heartbeats_when_idle(coordinator, bounty_dir):
    await coordinator.create_bounty(bounty_dir, self_funded=True)
    stream = coordinator.follow_events(0, poll_s=0.05, heartbeat_s=0.1)
    kinds = []
    while (event := await asyncio.wait_for(stream.__anext__(), 5)) is not None:
        kinds.append(event["kind"])
    assert kinds[0] == "bounty.created" and "bounty.status" in kinds
    await stream.aclose()
