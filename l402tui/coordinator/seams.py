"""Where the coordinator hands work to the payouts module (coordinator/payouts.py).

The payouts engineer owns the money that leaves: payouts, holdbacks, stake
resolution, refunds.  The service calls these optional async functions of
``l402tui.coordinator.payouts`` after the matching transition has committed:

- ``on_accepted(store, lightning, cfg, submission_id)``: a verdict was ACCEPTED.
- ``on_verdict(store, lightning, cfg, submission_id)``: any verdict (ACCEPTED,
  REJECTED, FLAGGED) — e.g. to refund or forfeit a stake.
- ``on_bounty_closed(store, lightning, cfg, bounty_id)``: OPEN -> CLOSED (refund the rest).
- ``claim(store, lightning, cfg, submission_id, bolt11) -> dict``: an agent asks
  to be paid what it is owed against an invoice.

Each must be idempotent: after a crash the service calls it again for every
submission still ACCEPTED and every bounty still CLOSED.
"""

from __future__ import annotations

import importlib
import logging
from types import ModuleType
from typing import Any

log = logging.getLogger("l402tui.coordinator")

_MODULE = "l402tui.coordinator.payouts"


def payouts_module() -> ModuleType | None:
    try:
        return importlib.import_module(_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name == _MODULE:
            return None
        raise


def has(name: str) -> bool:
    module = payouts_module()
    return module is not None and callable(getattr(module, name, None))


async def call(name: str, *args: Any) -> Any:
    """Call ``payouts.<name>(*args)`` if it exists; returns its result, or None."""
    module = payouts_module()
    fn = getattr(module, name, None) if module is not None else None
    if fn is None:
        log.debug("payouts.%s is not available in this build; skipped", name)
        return None
    return await fn(*args)
