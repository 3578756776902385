"""The service is the one way in: its transaction door wakes followers whoever commits,
moves go only along the design's tables, and the sponsor's review is a service method
with the same answers in-process as over HTTP."""

from __future__ import annotations

import asyncio
import time

import pytest

from l402tui.coordinator import lifecycle
from l402tui.coordinator.errors import Conflict, Invalid, NotFound
from l402tui.domain import BountyStatus as B, SubmissionStatus as S


async def _open_bounty(coordinator, bounty_dir) -> str:
    return (await coordinator.create_bounty(bounty_dir, self_funded=True))["bounty"]["id"]


async def test_a_commit_outside_the_service_wakes_followers_at_once(coordinator, bounty_dir):
    """The payouts engine writes through the store, not the service: its events reach an
    open stream without waiting for a poll (poll_s is far longer than the test's wait)."""
    await _open_bounty(coordinator, bounty_dir)
    after = await coordinator.last_event_id()
    stream = coordinator.follow_events(after, poll_s=60.0)
    waiting = asyncio.ensure_future(stream.__anext__())
    await asyncio.sleep(0.05)  # the follower has read everything and waits on the door
    assert not waiting.done()
    started = time.monotonic()
    async with coordinator.store.transaction() as txn:
        await txn.event("payment.complete", "payout:s_x", amount_msat=1)
    event = await asyncio.wait_for(waiting, 5.0)
    assert event["kind"] == "payment.complete" and time.monotonic() - started < 5.0
    await stream.aclose()


async def test_moves_go_only_along_the_design_table(coordinator, bounty_dir):
    bounty_id = await _open_bounty(coordinator, bounty_dir)
    async with coordinator.transaction() as txn:
        with pytest.raises(ValueError, match="no move from CLOSED to OPEN"):
            await lifecycle.move_bounty(txn, bounty_id, B.CLOSED, B.OPEN)
        with pytest.raises(ValueError, match="no move from REJECTED to ACCEPTED"):
            await lifecycle.move_submission(txn, "s_none", S.REJECTED, S.ACCEPTED)
        # A move from a state the row is not in changes nothing and writes no event.
        assert not await lifecycle.move_bounty(txn, bounty_id, B.AWAITING_FUNDING, B.CANCELED)
        assert await lifecycle.close_bounty(txn, bounty_id, "test")
        assert not await lifecycle.close_bounty(txn, bounty_id, "test again")
    statuses = [e["payload"]["status"] for e in await coordinator.events_after(0, 1000)
                if e["kind"] == "bounty.status"]
    assert statuses == ["OPEN", "CLOSED"]
    bounty = await coordinator.get_bounty(bounty_id)
    assert bounty["status"] == "CLOSED" and all(c["salt"] for c in bounty["heldout_commitments"])


async def test_review_is_a_service_method_with_clear_refusals(coordinator, bounty_dir):
    bounty_id = await _open_bounty(coordinator, bounty_dir)
    with pytest.raises(Invalid, match="'decision' must be one of accept, gaming"):
        await coordinator.review("s_whatever", "maybe")
    with pytest.raises(Invalid, match="'note' must be a string of at most 2000"):
        await coordinator.review("s_whatever", "accept", "x" * 2001)
    with pytest.raises(NotFound, match="no submission 's_missing'"):
        await coordinator.review("s_missing", "gaming")
    from tests.coordinator.conftest import diff_text

    sub = await coordinator.submit(bounty_id, "tok", diff_text())
    with pytest.raises(Conflict, match="only a FLAGGED one awaits the sponsor's decision"):
        await coordinator.review(sub["id"], "gaming", "looks fine")
    # Payout repairs refuse bad input before touching anything.
    with pytest.raises(Invalid, match="'sent' must be true"):
        await coordinator.resolve_payment("payout:x", sent="yes")  # type: ignore[arg-type]
    with pytest.raises(Invalid, match="'note'"):
        await coordinator.resume_payouts("   ")
    assert await coordinator.resume_payouts("nothing was wrong") == {"halted": None, "resumed": False}
    with pytest.raises(NotFound):
        await coordinator.claim_refund("b_missing", "lnbcrt1")
