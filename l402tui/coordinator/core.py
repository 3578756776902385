"""What the coordinator's collaborators may use of it: the store, the Lightning backend,
the configuration and the one transaction door.

Submissions, verdicts and reconciliation take a :class:`CoordinatorCore`, not the whole
``Coordinator``: what they decide comes back to the service, which acts on it (payouts,
cancels), so no collaborator calls back up into it.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from l402tui.config import Config
    from l402tui.lightning.backend import LightningBackend
    from l402tui.store.db import Store, Txn


class CoordinatorCore(Protocol):
    cfg: "Config"
    store: "Store"
    backend: "LightningBackend"

    def transaction(self) -> AbstractAsyncContextManager["Txn"]:
        """One write transaction; its commit wakes the event followers and the tick."""
        ...
