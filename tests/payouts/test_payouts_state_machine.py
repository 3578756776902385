"""Random interleavings of fund / submit / verdict / pay / claim / holdback release or forfeit /
refund / cancel / expiry / crash / restart, on a real store and the sim network.

After every step: each bounty's books are sound, the ledger balances, and what every
node actually received from the coordinator equals what the ledger says was paid —
so nothing was ever paid twice (and nothing paid went unrecorded).
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, invariant, rule
from payouts_world import World

from l402tui.coordinator import ledger, payouts
from l402tui.coordinator.errors import CoordinatorError
from l402tui.lightning.backend import LightningBackend


class Crash(BaseException):
    """Stands for kill -9 right after a payment left the node, before we recorded it."""


class CrashingNode(LightningBackend):
    """The coordinator's sim node; when armed, the process 'dies' just after a send."""

    name = "sim"

    def __init__(self, inner):
        self.inner = inner
        self.armed = False

    def __getattr__(self, item):
        return getattr(self.inner, item)

    async def _after(self, result):
        if self.armed:
            self.armed = False
            raise Crash()
        return result

    async def pay(self, bolt11, **kw):
        return await self._after(await self.inner.pay(bolt11, **kw))

    async def keysend(self, destination, amount_msat, *, max_fee_msat=None, preimage=None):
        # preimage as the sim takes it, so payouts records the hash before sending (the path
        # without it is tests/payouts/test_keysend_crash.py)
        return await self._after(await self.inner.keysend(destination, amount_msat, max_fee_msat=max_fee_msat,
                                                          preimage=preimage))

    async def status(self):
        return await self.inner.status()

    async def create_invoice(self, *a, **kw):
        return await self.inner.create_invoice(*a, **kw)

    async def create_hold_invoice(self, *a, **kw):
        return await self.inner.create_hold_invoice(*a, **kw)

    async def settle_hold(self, *a, **kw):
        return await self.inner.settle_hold(*a, **kw)

    async def cancel_hold(self, *a, **kw):
        return await self.inner.cancel_hold(*a, **kw)

    async def lookup_invoice(self, *a, **kw):
        return await self.inner.lookup_invoice(*a, **kw)

    async def list_invoices(self):
        return await self.inner.list_invoices()

    async def list_payments(self):
        return await self.inner.list_payments()

    async def lookup_payment(self, *a, **kw):
        return await self.inner.lookup_payment(*a, **kw)

    def updates(self):
        return self.inner.updates()


AGENTS = ["agent-1", "agent-2", "agent-3"]


class PayoutsMachine(RuleBasedStateMachine):
    bounties = Bundle("bounties")
    subs = Bundle("subs")

    def __init__(self):
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.dir = Path(tempfile.mkdtemp(prefix="payouts-sm-"))
        self.w = self.run(World.open(self.dir))
        self.ln = CrashingNode(self.w.coordinator)
        self.clock = time.time()
        self.sub_agent: dict[str, str] = {}

    def run(self, coro):
        return self.loop.run_until_complete(coro)

    def teardown(self):
        self.run(self.w.close())
        self.loop.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def call(self, name, *args, **kw):
        try:
            return self.run(getattr(payouts, name)(self.w.store, self.ln, self.w.cfg, *args, **kw))
        except Crash:
            self.run(self.w.reopen_store())  # the process died; a new one starts on the same files
        except CoordinatorError:
            pass  # refused with a message (nothing owed, wrong state): that is a valid outcome

    # -- rules --------------------------------------------------------------------------

    @initialize(target=bounties, stake=st.sampled_from([500, 500, 0]))  # stakes: kept, owed back, refunded
    def first_bounty(self, stake):
        return self.run(self.w.bounty(pool_sats=100_000, stake_sats=stake, holdback_s=60))

    @rule(target=bounties, funding=st.sampled_from(["hold", "hold", "self"]), stake=st.sampled_from([0, 500]),
          pool=st.sampled_from([20_000, 100_000]), keep=st.sampled_from([50.0, 50.0, 0.0, 100.0, 33.3, None]))
    def fund(self, funding, stake, pool, keep):
        return self.run(self.w.bounty(pool_sats=pool, funding=funding, stake_sats=stake, holdback_s=60,
                                      stake_keep=keep))

    @rule(target=subs, b=bounties, agent=st.sampled_from(AGENTS), keysend=st.booleans())
    def submit(self, b, agent, keysend):
        spec = self.run(self.w.store.fetchone("SELECT spec_json FROM bounties WHERE id = ?", (b,)))
        stake = 500 if '"stake_sats": 500' in spec["spec_json"] else 0
        sub = self.run(self.w.submit(b, agent, keysend=keysend, stake_sats=stake))
        self.sub_agent[sub] = agent
        return sub

    @rule(target=subs, b=bounties, agent=st.sampled_from(AGENTS), keysend=st.booleans(),
          decision=st.sampled_from(["ACCEPTED", "ACCEPTED", "ACCEPTED", "REJECTED", "REJECTED", "FLAGGED"]),
          improvement=st.sampled_from([0.001, 0.01, 0.02, 0.05, 0.07]))
    def submit_and_judge(self, b, agent, keysend, decision, improvement):
        sub = self.submit(b, agent, keysend)
        self.verdict(sub, decision, improvement)
        return sub

    @rule(sub=subs, decision=st.sampled_from(["ACCEPTED", "ACCEPTED", "REJECTED", "FLAGGED"]),
          improvement=st.sampled_from([0.001, 0.01, 0.02, 0.05, 0.07]))
    def verdict(self, sub, decision, improvement):
        row = self.run(self.w.store.fetchone("SELECT s.status, b.status AS bstatus FROM submissions s "
                                             "JOIN bounties b ON b.id = s.bounty_id WHERE s.id = ?", (sub,)))
        if row["status"] != "QUEUED" or row["bstatus"] != "OPEN":
            return
        self.run(self.w.verdict(sub, decision, improvement))
        self.call("on_verdict", sub)
        if decision == "ACCEPTED":
            self.call("on_accepted", sub)

    @rule(sub=subs, exact=st.booleans())
    def claim(self, sub, exact):
        rows = self.run(self.w.store.fetchall(
            "SELECT amount_msat FROM payments WHERE submission_id = ? AND status = 'AWAITING_CLAIM'", (sub,)))
        if not rows:
            return
        amount = rows[0]["amount_msat"] + (0 if exact else 1000)
        inv = self.run(self.w.agents[self.sub_agent[sub]].create_invoice(amount, "claim"))
        self.call("claim", sub, inv.bolt11)

    @rule(sub=subs)
    def claim_while_the_clock_ticks(self, sub):
        """The /claim handler and the service's tick at the same moment, on one store."""
        rows = self.run(self.w.store.fetchall(
            "SELECT amount_msat FROM payments WHERE submission_id = ? AND status = 'AWAITING_CLAIM'", (sub,)))
        if not rows:
            return
        inv = self.run(self.w.agents[self.sub_agent[sub]].create_invoice(rows[0]["amount_msat"], "claim"))

        async def both():
            args = (self.w.store, self.ln, self.w.cfg)
            return await asyncio.gather(payouts.claim(*args, sub, inv.bolt11), payouts.claim(*args, sub, inv.bolt11),
                                        payouts.tick(*args, at=self.clock), return_exceptions=True)
        for result in self.run(both()):
            if isinstance(result, BaseException) and not isinstance(result, CoordinatorError):
                raise result

    @rule(b=bounties)
    def sponsor_claims_refund(self, b):
        rows = self.run(self.w.store.fetchall(
            "SELECT amount_msat FROM payments WHERE bounty_id = ? AND purpose = 'refund' "
            "AND status = 'AWAITING_CLAIM'", (b,)))
        if rows:
            inv = self.run(self.w.sponsor.create_invoice(rows[0]["amount_msat"], "refund"))
            self.call("claim_refund", b, inv.bolt11)

    @rule(agent=st.sampled_from(AGENTS))
    def network_fails_next_payment(self, agent):
        self.run(self.w.net.inject_failure(agent, "no_route", count=1))  # hits the next payment to it

    @rule(seconds=st.sampled_from([1, 30, 61, 200]))
    def tick(self, seconds):
        self.clock += seconds
        self.call("tick", at=self.clock)

    @rule(sub=subs, outcome=st.sampled_from(["holds", "regresses", "fails"]))
    def stability_result(self, sub, outcome):
        queued = self.run(self.w.store.fetchone(
            "SELECT 1 FROM evaluations WHERE submission_id = ? AND kind = 'stability' AND status = 'QUEUED'", (sub,)))
        if queued:
            metrics = {"holds": {"error": 0.5}, "regresses": {"error": 1.5}, "fails": {}}[outcome]  # baseline 1.0
            self.run(self.w.finish_stability(sub, metrics, "FAILED" if outcome == "fails" else "DONE"))

    @rule(sub=subs, confirmed=st.booleans())
    def sponsor_decides(self, sub, confirmed):
        self.call("confirm_gaming", sub, confirmed)

    @rule(b=bounties, dice=st.integers(0, 2))
    def close(self, b, dice):
        """The deadline (or the operator): the service's OPEN -> CLOSED, then the seam."""
        if dice:
            return  # rarer than the other rules, so bounties live long enough to pay out
        async def go():
            async with self.w.store.transaction() as txn:
                await txn.execute("UPDATE bounties SET status = 'CLOSED' WHERE id = ? AND status = 'OPEN'", (b,))
        self.run(go())
        self.call("on_bounty_closed", b)

    @rule(b=bounties, dice=st.integers(0, 2))
    def cancel(self, b, dice):
        """The service's cancel_bounty: only while nothing was paid out."""
        if dice:
            return
        bounty = self.run(self.w.store.fetchone("SELECT * FROM bounties WHERE id = ?", (b,)))
        paid = self.run(self.w.store.fetchone("SELECT COUNT(*) AS n FROM payments WHERE bounty_id = ?", (b,)))
        if bounty["status"] not in ("AWAITING_FUNDING", "OPEN") or paid["n"]:
            return
        if bounty["funding_payment_hash"]:
            self.run(self.w.coordinator.cancel_hold(bounty["funding_payment_hash"]))

        async def go():
            async with self.w.store.transaction() as txn:
                await txn.execute("UPDATE bounties SET status = 'CANCELED' WHERE id = ?", (b,))
                await txn.execute("UPDATE invoices SET status = 'CANCELED' WHERE payment_hash = ? "
                                  "AND status IN ('OPEN', 'ACCEPTED')", (bounty["funding_payment_hash"],))
        self.run(go())
        self.call("tick", at=self.clock)

    @rule(dice=st.integers(0, 2))
    def holds_expire(self, dice):
        """Blocks pass: unsettled holds near their HTLC expiry are cancelled by the node;
        the service sees it and cancels bounties that paid nothing."""
        if dice:
            return
        self.run(self.w.net.mine(200))

        async def go():
            for inv in await self.w.store.fetchall("SELECT * FROM invoices WHERE status = 'ACCEPTED'"):
                state = (await self.w.coordinator.lookup_invoice(inv["payment_hash"])).state.value
                if state != "ACCEPTED":
                    async with self.w.store.transaction() as txn:
                        await txn.execute("UPDATE invoices SET status = ? WHERE payment_hash = ?",
                                          (state, inv["payment_hash"]))
                        if inv["kind"] == "funding":
                            await txn.execute("UPDATE bounties SET status = 'CANCELED' WHERE id = ? AND status "
                                              "= 'OPEN'", (inv["bounty_id"],))
        self.run(go())
        self.call("tick", at=self.clock)

    @rule()
    def crash_during_next_send(self):
        self.ln.armed = True
        self.clock += 1
        self.call("tick", at=self.clock)
        self.ln.armed = False

    @rule()
    def restart(self):
        self.run(self.w.reopen_store())
        self.call("tick", at=self.clock)
        self.run(self.w.net.clear_failures())  # so that the reconciling tick below can finish what is owed
        self.call("tick", at=self.clock)

        async def in_flight():
            return await self.w.store.scalar("SELECT COUNT(*) FROM payments WHERE status = 'PENDING'")
        assert self.run(in_flight()) == 0  # after a restart every attempt is decided from the node's records

    # -- invariants ----------------------------------------------------------------------

    @invariant()
    def books_sound_and_nothing_paid_twice(self):
        async def check():
            store = self.w.store
            assert await ledger.halted_reason(store) is None
            assert await ledger.books_balance(store) == []
            for b in await store.fetchall("SELECT id FROM bounties"):
                assert (await ledger.bounty_books(store, b["id"])).problems == []
            for agent in AGENTS:
                subs = [s for s, a in self.sub_agent.items() if a == agent]
                on_books = sum([await self.w.sent_to(s) for s in subs])  # payouts, holdbacks, stake refunds
                # Right after a crash the node may have paid what the books do not show yet: at most the
                # attempts still PENDING (reconciled before any retry). Anything beyond is a double payment.
                in_flight = sum([await store.scalar(
                    "SELECT COALESCE(SUM(amount_msat), 0) FROM payments WHERE submission_id = ? "
                    "AND status IN ('PENDING', 'UNKNOWN')", (s,)) for s in subs])
                received = await self.w.received(agent)
                assert on_books <= received <= on_books + in_flight, (agent, received, on_books, in_flight)
            refunded = await store.fetchone("SELECT COALESCE(SUM(amount_msat), 0) AS s FROM payments "
                                            "WHERE purpose = 'refund' AND status = 'COMPLETE'")
            assert await self.w.received("sponsor") == refunded["s"]
        self.run(check())

    @invariant()
    def nobody_is_paid_more_than_allocated(self):
        async def check():
            for s in self.sub_agent:
                paid = await ledger.balance(self.w.store, ledger.paid(s))
                allocated = -await self.w.store.scalar(
                    "SELECT COALESCE(SUM(amount_msat), 0) FROM ledger_entries WHERE txn_id = ? "
                    "AND account LIKE 'pool:%'", (f"payout:{s}",))
                fee = await self.w.store.scalar(
                    "SELECT COALESCE(SUM(amount_msat), 0) FROM ledger_entries WHERE txn_id = ? "
                    "AND account = 'fees:coordinator'", (f"payout:{s}",))
                assert paid <= allocated - fee
        self.run(check())


PayoutsMachine.TestCase.settings = settings(
    max_examples=15, stateful_step_count=40, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
test_payouts_state_machine = PayoutsMachine.TestCase
