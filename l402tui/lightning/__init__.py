"""Lightning backends: ``make_backend(cfg)`` gives the one this process should use.

The interface and result types live in :mod:`l402tui.lightning.backend` and are
re-exported here; ``sim`` and ``cln`` are imported only when picked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from l402tui.lightning.backend import (BackendUnavailable, FeeLimitExceeded, InsufficientBalance,
                                       InvalidRequest, InvalidState, Invoice, InvoiceExpired,
                                       InvoiceNotFound, InvoiceState, InvoiceUpdate, LightningBackend,
                                       LightningError, NodeStatus, NoRoute, Payment, PaymentRejected,
                                       PaymentState, PaymentTimeout, WrongPreimage)

if TYPE_CHECKING:
    from l402tui.config import Config

__all__ = ["make_backend", "BackendUnavailable", "FeeLimitExceeded", "InsufficientBalance", "InvalidRequest",
           "InvalidState", "Invoice", "InvoiceExpired", "InvoiceNotFound", "InvoiceState", "InvoiceUpdate",
           "LightningBackend", "LightningError", "NodeStatus", "NoRoute", "Payment", "PaymentRejected",
           "PaymentState", "PaymentTimeout", "WrongPreimage"]


def make_backend(cfg: "Config", node: str | None = None) -> LightningBackend:
    """The backend this process should use, from config: ``lightning.backend`` picks
    ``sim`` (node ``node`` or ``lightning.node`` on ``<data_dir>/simnet.sqlite``) or
    ``cln`` (``lightning.cln_rpc_path``).  Heavy imports happen here, not at import time.
    Closing the returned backend releases what it opened."""
    kind = cfg.get("lightning.backend")
    if kind == "sim":
        from l402tui.lightning.sim import SimNetwork, SimNode, check_node_name

        name = check_node_name(node or cfg.get("lightning.node"))
        return SimNode(SimNetwork.from_config(cfg), name, owns_network=True)
    if kind == "cln":
        from l402tui.lightning.cln import ClnBackend

        return ClnBackend.from_config(cfg)
    raise InvalidRequest(f"lightning.backend is {kind!r}; use 'sim' (embedded simulated network) or 'cln' "
                         "(Core Lightning with the l402tui hold-invoice plugin)")
