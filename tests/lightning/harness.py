"""What the contract suite needs from a backend under test, for sim and cln alike.

``receiver`` is the coordinator's node (issues invoices and hold invoices), ``payer``
a second node with funds.  ``send_htlc`` pays with a chosen amount (to test the
payee's amount check), ``mine`` advances the block clock, ``restart_receiver``
restarts the receiving side mid-HTLC, ``hook_answers`` lists what the hold plugin
answered to lightningd (cln only: the sim has no plugin).
"""

from __future__ import annotations

import abc
import asyncio
from dataclasses import dataclass, field
from pathlib import Path

from l402tui.lightning.backend import InvoiceUpdate, LightningBackend, Payment, PaymentState

PAYER_FUNDS_MSAT = 50_000_000


@dataclass
class Harness(abc.ABC):
    kind: str
    receiver: LightningBackend
    payer: LightningBackend
    safety_blocks: int
    _updates: list[InvoiceUpdate] = field(default_factory=list)
    _update_task: asyncio.Task | None = None

    async def start_updates(self) -> None:
        ready = asyncio.Event()

        async def collect() -> None:
            stream = self.receiver.updates()
            ready.set()
            try:
                async for update in stream:
                    self._updates.append(update)
            finally:
                await stream.aclose()

        self._update_task = asyncio.create_task(collect())
        await ready.wait()  # streams start when asked for, so nothing after this is missed

    async def wait_update(self, payment_hash: str, state: str, timeout: float = 5.0) -> InvoiceUpdate:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            for u in self._updates:
                if u.payment_hash == payment_hash and u.state.value == state:
                    return u
            if asyncio.get_running_loop().time() > deadline:
                seen = [(u.payment_hash[:8], u.state.value) for u in self._updates]
                raise AssertionError(f"no {state} update for {payment_hash[:8]} within {timeout}s; saw {seen}")
            await asyncio.sleep(0.02)

    @abc.abstractmethod
    async def send_htlc(self, bolt11: str, amount_msat: int) -> Payment: ...

    @abc.abstractmethod
    async def mine(self, blocks: int) -> None: ...

    async def height(self) -> int:
        return (await self.receiver.status()).block_height

    @abc.abstractmethod
    async def restart_receiver(self) -> None: ...

    def hook_answers(self, payment_hash: str) -> list[dict]:
        return []

    async def payment_outcome(self, payment_hash: str, timeout: float = 10.0) -> Payment:
        """The payer's payment once it is no longer PENDING (real nodes learn a settle or a
        cancel a few messages later; the sim and the fake at once)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            payment = await self.payer.lookup_payment(payment_hash)
            if payment.state is not PaymentState.PENDING or asyncio.get_running_loop().time() > deadline:
                await self.htlcs_resolved(payment_hash)
                return payment
            await asyncio.sleep(0.05)

    async def htlcs_resolved(self, payment_hash: str) -> None:
        """Return once no HTLC for this hash is left in the payer's channels (real nodes only)."""

    async def payer_balance(self) -> int:
        return (await self.payer.status()).balance_msat

    async def close(self) -> None:
        if self._update_task is not None:
            self._update_task.cancel()
            try:
                await self._update_task
            except asyncio.CancelledError:
                pass


class SimHarness(Harness):
    def __init__(self, path: Path, safety_blocks: int = 6) -> None:
        from l402tui.lightning.sim import SimNetwork

        self.path = path
        # A long block interval: the clock moves only when a test mines.
        self.net = SimNetwork.open(path, block_interval_s=3600.0, hold_safety_blocks=safety_blocks,
                                   poll_interval_s=0.02)
        super().__init__("sim", self.net.node("coordinator"), self.net.node("agent-1"), safety_blocks)

    async def setup(self) -> "SimHarness":
        await self.net.create_node("coordinator", 0)
        await self.net.create_node("agent-1", PAYER_FUNDS_MSAT)
        return self

    async def send_htlc(self, bolt11: str, amount_msat: int) -> Payment:
        return await self.payer.pay(bolt11, amount_msat=amount_msat)

    async def mine(self, blocks: int) -> None:
        await self.net.mine(blocks)

    async def restart_receiver(self) -> None:
        from l402tui.lightning.sim import SimNetwork

        old = self.net
        self.net = SimNetwork.open(self.path, hold_safety_blocks=self.safety_blocks, poll_interval_s=0.02)
        self.receiver = self.net.node("coordinator")
        self.payer = self.net.node("agent-1")
        await old.close()

    async def totals_balanced(self) -> bool:
        return (await self.net.totals()).balanced

    async def close(self) -> None:
        await super().close()
        await self.net.close()
