"""A second process on the same simulated network (run by the sim tests).

    python sim_child.py DB pay BOLT11 [NODE]   pay as NODE (agent-1), print the payment state
                                               or the error's class name
    python sim_child.py DB hold-and-wait HASH  coordinator issues a hold for HASH, agent-1
                                               pays it, prints HELD, then waits to be killed
"""

from __future__ import annotations

import asyncio
import sys
import time

from l402tui.lightning.sim import SimNetwork


async def main(db: str, action: str, arg: str, node: str = "agent-1") -> None:
    from l402tui.lightning.backend import LightningError

    net = SimNetwork.open(db, block_interval_s=3600.0)
    if action == "pay":
        try:
            payment = await net.node(node).pay(arg)
            print(payment.state.value, flush=True)
        except LightningError as exc:
            print(type(exc).__name__, flush=True)
    elif action == "hold-and-wait":
        hold = await net.node("coordinator").create_hold_invoice(arg, 777_000, "held across a crash")
        await net.node("agent-1").pay(hold.bolt11)
        print("HELD", flush=True)
        time.sleep(60)  # killed with SIGKILL long before this ends
    await net.close()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
