"""Findings: what the start-up reconciliation wrote down for the operator (``store_findings``).

Here, below both the coordinator and the L402 gate, because the gate re-adopts a paid
token whose rows a lost WAL took (``coordinator/reconcile.py`` records the finding;
``l402/rootkeys.py`` closes it when the token's holder comes back).
"""

from __future__ import annotations

import time

from l402tui.store.db import Store, Txn

FINDING_EVENT = "store.finding"


async def is_lost_paid_token(store: Store, payment_hash: str) -> bool:
    """Whether a paid L402 token for ``payment_hash`` lost its store rows (an open
    ``l402_token_lost`` finding).  For token verification: with root keys derived from
    a master outside the database, such a token's signature still proves it ours, so it
    can be re-adopted (see :func:`token_readopted`)."""
    return bool(await store.scalar(
        "SELECT 1 FROM store_findings WHERE kind = 'l402_token_lost' AND payment_hash = ? "
        "AND acknowledged_at IS NULL", (payment_hash,)))


async def token_readopted(txn: Txn, payment_hash: str, token_id: str) -> None:
    """Close the finding of a lost token whose holder came back and was let in again
    (call in the transaction that restores its root-key row)."""
    await txn.execute("UPDATE store_findings SET acknowledged_at = ?, note = ?, action = 'token re-adopted' "
                      "WHERE kind = 'l402_token_lost' AND payment_hash = ? AND acknowledged_at IS NULL",
                      (time.time(), f"its holder presented token {token_id} with the preimage", payment_hash))
    await txn.event(FINDING_EVENT, payment_hash, finding="l402_token_lost", action="token re-adopted")
