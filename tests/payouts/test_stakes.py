"""The stake rule: ACCEPTED refunds it all, REJECTED keeps the bounty's share and owes the rest
back, FLAGGED keeps it all once the sponsor confirms gaming; crash-safe between settle and refund."""

from __future__ import annotations

import pytest
from payouts_world import World

from l402tui.bounty.spec import BountyInvalid, load_bounty
from l402tui.coordinator import ledger, payouts
from l402tui.coordinator.errors import Invalid

SAT = 1000
STAKE = 1_000


class Killed(BaseException):
    """Stands for kill -9 at that instant: nothing after it runs, nothing is flushed."""


class DiesAfter:
    """The coordinator's node, seen by a process that dies right after one call succeeds."""

    def __init__(self, inner, method: str):
        self.inner, self.method, self.armed = inner, method, True

    def __getattr__(self, item):
        attr = getattr(self.inner, item)
        if item != self.method:
            return attr

        async def call(*a, **kw):
            result = await attr(*a, **kw)
            if self.armed:
                self.armed = False
                raise Killed()
            return result
        return call


async def _judged(w: World, decision: str, *, keep: float | None = 50.0, keysend: bool = False,
                  agent: str = "agent-1") -> tuple[str, str]:
    b = await w.bounty(stake_sats=STAKE, stake_keep=keep)
    s = await w.submit(b, agent, keysend=keysend, stake_sats=STAKE)
    await w.verdict(s, decision, improvement=0.0005 if decision == "REJECTED" else 0.02)
    return b, s


async def _sound(w: World, b: str) -> ledger.BountyBooks:
    books = await w.books(b)
    assert books.problems == [] and await ledger.books_balance(w.store) == []
    # paid + held back + refunded (+ owed, fees) never exceed what was funded, to the msat.
    assert books.out <= books.funded and books.out + books.pool_left == books.funded
    assert books.stakes_in == books.stakes_held + books.stakes_owed + books.stakes_returned + books.stakes_kept
    return books


async def _stake_state(w: World, s: str) -> str:
    row = await w.store.fetchone("SELECT status FROM invoices WHERE submission_id = ? AND kind = 'stake'", (s,))
    return row["status"]


async def test_accepted_refunds_the_whole_stake(world: World):
    start = await world.balance("agent-1")
    b, s = await _judged(world, "ACCEPTED")
    await payouts.on_verdict(world.store, world.coordinator, world.cfg, s)
    assert await _stake_state(world, s) == "CANCELED"
    assert await world.balance("agent-1") == start  # the held HTLC failed back in full
    books = await _sound(world, b)
    assert books.stakes_returned == STAKE * SAT and books.stakes_kept == 0


async def test_rejected_keeps_half_into_the_pool_and_owes_the_rest(world: World):
    store, ln, cfg = world.store, world.coordinator, world.cfg
    b, s = await _judged(world, "REJECTED")
    staked = await world.balance("agent-1")  # after paying the stake (and its routing fee)
    await payouts.on_verdict(store, ln, cfg, s)
    await payouts.on_verdict(store, ln, cfg, s)  # again (a restart replays verdicts): nothing twice
    await payouts.tick(store, ln, cfg)
    assert await _stake_state(world, s) == "SETTLED"
    row = await store.fetchone("SELECT * FROM payments WHERE idempotency_key = ?", (f"stake_refund:{s}",))
    assert row["purpose"] == "stake_refund" and row["status"] == "AWAITING_CLAIM" and row["amount_msat"] == 500 * SAT
    books = await _sound(world, b)
    assert books.stakes_kept == 500 * SAT and books.stakes_owed == 500 * SAT
    assert books.funded == 107_500 * SAT + 500 * SAT  # the kept half joined the pool

    # The agent claims it like a payout: an invoice for exactly the amount owed.
    wrong = await world.agents["agent-1"].create_invoice(1_000 * SAT, "all of it")
    with pytest.raises(Invalid, match="500000 msat \\(stake_refund\\)"):
        await payouts.claim(store, ln, cfg, s, wrong.bolt11)
    inv = await world.agents["agent-1"].create_invoice(500 * SAT, "stake back")
    assert (await payouts.claim(store, ln, cfg, s, inv.bolt11))["status"] == "COMPLETE"
    await payouts.tick(store, ln, cfg)
    assert await world.balance("agent-1") == staked + 500 * SAT
    assert await world.received("agent-1") == 500 * SAT
    books = await _sound(world, b)
    assert books.stakes_owed == 0 and books.stakes_returned == 500 * SAT
    assert (await store.fetchone("SELECT status FROM submissions WHERE id = ?", (s,)))["status"] == "REJECTED"
    kept = await store.fetchall("SELECT * FROM events WHERE kind = 'stake.kept' AND subject_id = ?", (s,))
    assert len(kept) == 1


async def test_rejected_with_a_node_id_gets_the_rest_by_keysend(world: World):
    b, s = await _judged(world, "REJECTED", keysend=True, agent="agent-2")
    await payouts.on_verdict(world.store, world.coordinator, world.cfg, s)
    row = await world.store.fetchone("SELECT status FROM payments WHERE idempotency_key = ?", (f"stake_refund:{s}",))
    assert row["status"] == "COMPLETE" and await world.received("agent-2") == 500 * SAT
    await _sound(world, b)


@pytest.mark.parametrize("keep, state, kept, back", [
    (0.0, "CANCELED", 0, 0),  # nothing kept: the hold is simply cancelled
    (100.0, "SETTLED", STAKE, 0),  # all kept: nothing owed back, no payment row
    (33.3, "SETTLED", 333, STAKE - 333),  # 333,000 msat kept, rounded down in the agent's favour
    (None, "CANCELED", 0, 0),  # terms published before the rule: the agent was never told, so nothing is kept
])
async def test_the_kept_share_follows_the_bounty(world: World, keep, state, kept, back):
    b, s = await _judged(world, "REJECTED", keep=keep)
    await payouts.on_verdict(world.store, world.coordinator, world.cfg, s)
    assert await _stake_state(world, s) == state
    books = await _sound(world, b)
    assert books.stakes_kept == kept * SAT
    owed = await world.store.fetchone("SELECT amount_msat FROM payments WHERE purpose = 'stake_refund'")
    assert (owed["amount_msat"] if owed else 0) == back * SAT


@pytest.mark.parametrize("confirmed", [True, False])
async def test_flagged_keeps_all_when_the_sponsor_confirms_gaming(world: World, confirmed):
    store, ln, cfg = world.store, world.coordinator, world.cfg
    start = await world.balance("agent-1")
    b, s = await _judged(world, "FLAGGED")
    staked = await world.balance("agent-1")
    await payouts.on_verdict(store, ln, cfg, s)
    assert await _stake_state(world, s) == "ACCEPTED"  # held while the sponsor reviews
    await payouts.tick(store, ln, cfg)
    assert await _stake_state(world, s) == "ACCEPTED"
    await payouts.confirm_gaming(store, ln, cfg, s, confirmed)
    books = await _sound(world, b)
    if confirmed:
        assert await _stake_state(world, s) == "SETTLED" and books.stakes_kept == STAKE * SAT
        assert await world.balance("agent-1") == staked < start - STAKE * SAT
    else:
        assert await _stake_state(world, s) == "CANCELED" and books.stakes_kept == 0
        assert await world.balance("agent-1") == start
    assert await store.fetchone("SELECT 1 FROM payments WHERE purpose = 'stake_refund'") is None


async def test_killed_between_settle_and_refund_pays_the_rest_once(world: World):
    store, cfg = world.store, world.cfg
    b, s = await _judged(world, "REJECTED", keysend=True, agent="agent-2")
    staked = await world.balance("agent-2")
    dying = DiesAfter(world.coordinator, "settle_hold")
    with pytest.raises(Killed):
        await payouts.on_verdict(store, dying, cfg, s)
    await world.reopen_store()
    store = world.store
    # The node settled the hold; the store never heard of it.
    assert (await world.coordinator.lookup_invoice(
        (await store.fetchone("SELECT stake_payment_hash AS h FROM submissions WHERE id = ?", (s,)))["h"])
    ).state.value == "SETTLED"
    assert await _stake_state(world, s) == "ACCEPTED"
    assert not await ledger.posted(store, f"stake_keep:{s}")
    assert await store.fetchone("SELECT 1 FROM payments WHERE purpose = 'stake_refund'") is None

    # The restarted coordinator's clock: books what the node did, once, and sends the rest.
    await payouts.tick(store, world.coordinator, cfg)
    await payouts.tick(store, world.coordinator, cfg)
    await payouts.on_verdict(store, world.coordinator, cfg, s)
    assert await _stake_state(world, s) == "SETTLED"
    assert await world.received("agent-2") == 500 * SAT
    assert await world.balance("agent-2") == staked + 500 * SAT
    books = await _sound(world, b)
    assert books.stakes_kept == 500 * SAT and books.stakes_returned == 500 * SAT and books.stakes_owed == 0


async def test_killed_as_the_refund_leaves_is_not_sent_twice(world: World):
    store, cfg = world.store, world.cfg
    b, s = await _judged(world, "REJECTED", keysend=True, agent="agent-3")
    dying = DiesAfter(world.coordinator, "keysend")
    with pytest.raises(Killed):
        await payouts.on_verdict(store, dying, cfg, s)
    await world.reopen_store()
    row = await world.store.fetchone("SELECT status FROM payments WHERE idempotency_key = ?", (f"stake_refund:{s}",))
    assert row["status"] == "PENDING"  # recorded before it was sent; the outcome never was
    for _ in range(3):
        await payouts.tick(world.store, world.coordinator, cfg)
    row = await world.store.fetchone("SELECT status FROM payments WHERE idempotency_key = ?", (f"stake_refund:{s}",))
    assert row["status"] == "COMPLETE" and await world.received("agent-3") == 500 * SAT
    await _sound(world, b)


async def test_a_kept_stake_of_a_closed_bounty_goes_back_to_the_sponsor(world: World):
    store, ln, cfg = world.store, world.coordinator, world.cfg
    await world.net.deposit("coordinator", 10 * SAT)  # the operator's own sats pay the routing fees
    b, s = await _judged(world, "REJECTED")
    async with store.transaction() as txn:
        await txn.execute("UPDATE bounties SET status = 'CLOSED' WHERE id = ?", (b,))
    await payouts.on_bounty_closed(store, ln, cfg, b)  # nothing paid: the funding hold is cancelled
    await payouts.on_verdict(store, ln, cfg, s)
    books = await _sound(world, b)
    assert books.pool_left == 0 and books.refund_pending == 500 * SAT  # the kept half, owed to the sponsor
    inv = await world.sponsor.create_invoice(500 * SAT, "kept stake")
    assert (await payouts.claim_refund(store, ln, cfg, b, inv.bolt11))["status"] == "COMPLETE"
    inv = await world.agents["agent-1"].create_invoice(500 * SAT, "stake back")
    assert (await payouts.claim(store, ln, cfg, s, inv.bolt11))["status"] == "COMPLETE"
    await payouts.tick(store, ln, cfg)
    assert (await store.fetchone("SELECT status FROM bounties WHERE id = ?", (b,)))["status"] == "SETTLED"
    await _sound(world, b)


@pytest.mark.parametrize("value, message", [
    ("150", "use a percentage from 0 to 100"), ("-1", "must be >= 0"), ("nan", "use a percentage from 0 to 100"),
    ('"half"', "must be a number"),
])
def test_bounty_toml_refuses_a_keep_share_out_of_range(tmp_path, value, message):
    src = load_bounty("sample_bounties/logparse").root / "bounty.toml"
    text = src.read_text(encoding="utf-8").replace("[reward]", f"[reward]\nrejected_stake_keep_percent = {value}", 1)
    assert "rejected_stake_keep_percent" in text
    (tmp_path / "bounty.toml").write_text(text, encoding="utf-8")
    for name in ("target", "public", "heldout", "scorer"):
        (tmp_path / name).symlink_to(src.parent / name)
    with pytest.raises(BountyInvalid) as info:
        load_bounty(tmp_path)
    assert any("reward.rejected_stake_keep_percent" in str(p) and message in str(p) for p in info.value.problems)
