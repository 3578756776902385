"""The contract harness on real lightningd + bitcoind regtest (see regtest.py).

``receiver`` is the coordinator node running our hold-invoice plugin, ``payer`` the
agent node (a direct channel, so routing fees are zero).  Each test leaves the shared
network as it found it: ``close`` cancels hold invoices still open or held and waits
until no HTLC is left in flight.
"""

from __future__ import annotations

import asyncio

from l402tui.lightning._bolt11 import decode_invoice
from l402tui.lightning.backend import InvoiceState, Payment
from l402tui.lightning.cln import ClnBackend, _translate
from tests.lightning.harness import Harness
from tests.lightning.regtest import SAFETY_BLOCKS, RegtestNetwork, wait_until


class RegtestHarness(Harness):
    def __init__(self, net: RegtestNetwork) -> None:
        self.net = net
        super().__init__("regtest", ClnBackend(net.nodes["coordinator"].rpc_path, wait_timeout_s=1),
                         ClnBackend(net.nodes["agent"].rpc_path), SAFETY_BLOCKS)

    async def setup(self) -> "RegtestHarness":
        return self

    async def _thread(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)

    async def send_htlc(self, bolt11: str, amount_msat: int, *, total_msat: int | None = None,
                        partid: int = 0, wait: bool = True) -> Payment:
        """One HTLC of ``amount_msat`` (an MPP part when ``total_msat`` is larger) over the
        direct channel, with the invoice's payment secret; real lightningd, no pay plugin."""
        from pyln.client import RpcError

        inv = decode_invoice(bolt11)
        agent = self.net.nodes["agent"]
        chan = next(c for c in agent.call("listpeerchannels", id=inv.payee)["channels"]
                    if c["state"] == "CHANNELD_NORMAL")
        route = [{"id": inv.payee, "channel": chan["short_channel_id"], "direction": chan["direction"],
                  "amount_msat": amount_msat, "delay": inv.min_final_cltv + 1, "style": "tlv"}]
        params = dict(route=route, payment_hash=inv.payment_hash, payment_secret=inv.payment_secret,
                      amount_msat=total_msat or amount_msat, bolt11=bolt11)
        if total_msat is not None:
            params.update(partid=partid, groupid=1)
        try:
            await self._thread(lambda: agent.rpc().call("sendpay", params))
            if wait:
                await self._thread(lambda: agent.rpc().call("waitsendpay", {
                    "payment_hash": inv.payment_hash, "timeout": 30, **({"partid": partid, "groupid": 1}
                                                                       if total_msat is not None else {})}))
        except RpcError as exc:
            raise _translate("pay", exc.error) from None
        return await self.payer.lookup_payment(inv.payment_hash)

    async def htlcs_resolved(self, payment_hash: str) -> None:
        agent = self.net.nodes["agent"]

        def gone() -> bool:
            return not any(h["payment_hash"] == payment_hash for c in agent.call("listpeerchannels")["channels"]
                           for h in c.get("htlcs", []))

        await self._thread(lambda: wait_until(gone, 30, f"the HTLC for {payment_hash[:8]} to be resolved"))

    async def mine(self, blocks: int) -> None:
        await self._thread(self.net.mine, blocks)

    async def restart_receiver(self) -> None:
        await self._thread(self.net.restart_node, "coordinator")

    async def close(self) -> None:
        await super().close()
        try:
            for inv in await self.receiver.list_invoices():
                if inv.is_hold and inv.state in (InvoiceState.OPEN, InvoiceState.ACCEPTED):
                    await self.receiver.cancel_hold(inv.payment_hash)
            await self._thread(self._wait_no_htlcs)
        finally:
            await self.receiver.close()
            await self.payer.close()

    def _wait_no_htlcs(self) -> None:
        def idle() -> bool:
            return all(not c.get("htlcs") for name in ("sponsor", "agent")
                       for c in self.net.nodes[name].call("listpeerchannels")["channels"])

        wait_until(idle, 30, "no HTLC in flight between the tests")
