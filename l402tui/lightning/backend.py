"""The one Lightning interface used by the coordinator, sponsors and agents.

Backends: ``sim`` (embedded simulated network, the default) and ``cln`` (Core
Lightning + our hold-invoice plugin).  All amounts are msat.  Errors a caller can
act on are :class:`LightningError` subclasses with a message that says what to do.
"""

from __future__ import annotations

import abc
import enum
from dataclasses import dataclass, field
from typing import AsyncIterator


class InvoiceState(str, enum.Enum):
    OPEN = "OPEN"  # waiting for payment
    ACCEPTED = "ACCEPTED"  # hold invoice: HTLC held, not yet settled
    SETTLED = "SETTLED"  # paid (plain invoice) or settled (hold invoice)
    CANCELED = "CANCELED"  # hold invoice cancelled; any HTLC failed back
    EXPIRED = "EXPIRED"  # expired unpaid


class PaymentState(str, enum.Enum):
    PENDING = "PENDING"  # sent, outcome unknown (e.g. held by a hold invoice)
    COMPLETE = "COMPLETE"
    FAILED = "FAILED"


@dataclass(frozen=True)
class NodeStatus:
    node_id: str  # 33-byte compressed pubkey, hex
    alias: str
    network: str
    block_height: int
    balance_msat: int  # spendable
    backend: str  # "sim" | "cln"
    supports_keysend: bool = True


@dataclass(frozen=True)
class Invoice:
    payment_hash: str  # hex
    bolt11: str
    amount_msat: int
    description: str
    state: InvoiceState
    created_at: float
    expires_at: float
    is_hold: bool = False
    preimage: str | None = None  # known for plain invoices we created, and after settle
    cltv_expiry: int | None = None  # block height at which a held HTLC would expire
    amount_received_msat: int = 0
    settled_at: float | None = None


@dataclass(frozen=True)
class Payment:
    payment_hash: str
    amount_msat: int
    fee_msat: int
    state: PaymentState
    preimage: str | None = None
    destination: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class InvoiceUpdate:
    """One state change of an invoice we issued, as seen in :meth:`LightningBackend.updates`."""

    payment_hash: str
    state: InvoiceState
    amount_msat: int
    is_hold: bool
    at: float
    extra: dict = field(default_factory=dict)


class LightningError(Exception):
    """Base for errors a caller can understand and act on."""


class NoRoute(LightningError):
    pass


class InsufficientBalance(LightningError):
    pass


class InvoiceExpired(LightningError):
    pass


class InvoiceNotFound(LightningError):
    pass


class WrongPreimage(LightningError):
    pass


class InvalidState(LightningError):
    """E.g. settling a hold invoice that has no HTLC held, or was cancelled."""


class FeeLimitExceeded(LightningError):
    pass


class BackendUnavailable(LightningError):
    pass


class InvalidRequest(LightningError, ValueError):
    """Bad input from the caller (malformed hash, amount, invoice string, node name)."""


class PaymentRejected(LightningError):
    """The payee refused the HTLC (wrong amount, unknown invoice, already paid, cancelled)."""


class PaymentTimeout(LightningError):
    """No outcome within ``timeout_s``; the message says whether anything was sent."""


class LightningBackend(abc.ABC):
    """Async wallet and invoice operations on one node."""

    name: str = "abstract"

    @abc.abstractmethod
    async def status(self) -> NodeStatus: ...

    @abc.abstractmethod
    async def create_invoice(self, amount_msat: int, description: str, expiry_s: int = 3600,
                             *, preimage: str | None = None) -> Invoice:
        """A plain invoice; settles automatically when paid."""

    @abc.abstractmethod
    async def create_hold_invoice(self, payment_hash: str, amount_msat: int, description: str,
                                  expiry_s: int = 3600, cltv_delta: int = 144, *,
                                  preimage: str | None = None) -> Invoice:
        """A hold invoice for ``payment_hash``: a payment is held (ACCEPTED) until
        :meth:`settle_hold` with the preimage or :meth:`cancel_hold`.

        The preimage stays with the caller.  A caller that knows it may pass ``preimage``:
        every backend refuses one that does not hash to ``payment_hash`` (InvalidRequest),
        and hands it to the node only where the node's hold plugin cannot work without it
        (daywalker90's ``holdinvoice``); the others forget it."""

    @abc.abstractmethod
    async def settle_hold(self, preimage: str, *, payment_hash: str | None = None) -> Invoice:
        """Settle an ACCEPTED hold invoice; raises WrongPreimage / InvalidState.

        With ``payment_hash`` a preimage that does not hash to it is refused with
        WrongPreimage naming that invoice; without it, the invoice is found by
        sha256(preimage)."""

    @abc.abstractmethod
    async def cancel_hold(self, payment_hash: str) -> Invoice:
        """Cancel a hold invoice (failing any held HTLC back to the payer). Idempotent."""

    @abc.abstractmethod
    async def lookup_invoice(self, payment_hash: str) -> Invoice:
        """Raises InvoiceNotFound."""

    @abc.abstractmethod
    async def list_invoices(self) -> list[Invoice]: ...

    async def forget_expired_invoices(self, payment_hashes: list[str]) -> int:
        """Delete those of these invoices that expired unpaid (the caller no longer needs
        them); returns how many.  A backend whose node cleans up by itself (CLN's
        ``autoclean-expiredinvoices-age``) forgets nothing here."""
        return 0

    @abc.abstractmethod
    async def pay(self, bolt11: str, *, max_fee_msat: int | None = None,
                  amount_msat: int | None = None, timeout_s: float = 60.0) -> Payment:
        """Pay a BOLT11 invoice.  For a hold invoice the result is PENDING until the
        payee settles or cancels; :meth:`lookup_payment` follows it."""

    @abc.abstractmethod
    async def keysend(self, destination: str, amount_msat: int, *,
                      max_fee_msat: int | None = None) -> Payment:
        """Spontaneous payment to a node id; raises LightningError where unsupported."""

    @abc.abstractmethod
    async def lookup_payment(self, payment_hash: str) -> Payment:
        """Our outgoing payment for this hash; raises InvoiceNotFound if none."""

    async def list_payments(self) -> list[Payment] | None:
        """Every outgoing payment this node made (start-up reconciliation compares them with
        the store's); None where the backend cannot list them."""
        return None

    @abc.abstractmethod
    def updates(self) -> AsyncIterator[InvoiceUpdate]:
        """Async stream of state changes of invoices this node issued (plain and hold)."""

    async def close(self) -> None:
        """Release connections and background tasks."""
        return None
