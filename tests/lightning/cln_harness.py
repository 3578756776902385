"""The contract harness for the cln backend: two fake lightningd nodes on a fake
network, the receiver running our real hold-invoice plugin as a subprocess."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from l402tui.lightning._bolt11 import decode_invoice
from l402tui.lightning.backend import Payment
from l402tui.lightning.cln import ClnBackend, _translate
from tests.lightning.fake_lightningd import FakeLightningd, FakeNetwork, RpcFail
from tests.lightning.harness import PAYER_FUNDS_MSAT, Harness

SAFETY_BLOCKS = 6


class ClnHarness(Harness):
    def __init__(self, tmp_path: Path) -> None:
        # Unix socket paths must stay under ~108 bytes: pytest's tmp_path can be longer.
        self.dir = Path(tempfile.mkdtemp(prefix="ln-", dir="/tmp"))
        self.net = FakeNetwork()
        self.receiver_node = FakeLightningd(self.net, "coordinator", self.dir / "coordinator", 0,
                                            plugin_options={"l402tui-hold-safety-blocks": SAFETY_BLOCKS})
        self.payer_node = FakeLightningd(self.net, "agent-1", self.dir / "agent-1", PAYER_FUNDS_MSAT, plugin=None)
        super().__init__("cln", ClnBackend(self.receiver_node.rpc_path, wait_timeout_s=1),
                         ClnBackend(self.payer_node.rpc_path), SAFETY_BLOCKS)

    async def setup(self) -> "ClnHarness":
        await self.receiver_node.start()
        await self.payer_node.start()
        return self

    async def send_htlc(self, bolt11: str, amount_msat: int) -> Payment:
        inv = decode_invoice(bolt11)
        try:
            await self.payer_node.send_htlc(inv.payee, inv.payment_hash, amount_msat, cltv_delta=inv.min_final_cltv,
                                            payment_secret=inv.payment_secret, bolt11=bolt11)
        except RpcFail as exc:
            raise _translate("pay", exc.error) from None
        return await self.payer.lookup_payment(inv.payment_hash)

    async def mine(self, blocks: int) -> None:
        await self.net.mine(blocks)

    async def restart_receiver(self) -> None:
        await self.receiver_node.restart_plugin()

    def hook_answers(self, payment_hash: str) -> list[dict]:
        return self.receiver_node.hook_answers.get(payment_hash, [])

    async def close(self) -> None:
        await super().close()
        await self.receiver.close()
        await self.payer.close()
        await self.receiver_node.stop()
        await self.payer_node.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
