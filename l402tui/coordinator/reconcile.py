"""The store against the Lightning node, which is the truth about money.

At the coordinator's start (:func:`reconcile_at_start`) and on demand (`l402tui wallet
ledger --check`, :func:`find_discrepancies`) every invoice the node issued for us and
every payment it made is compared with the store.  What differs is recovered where the
node's record is enough, and always written down as a ``store_findings`` row that
stays open until the operator acknowledges it:

- an invoice the store has in an older state (an update missed while down): the
  node's state is applied through the coordinator's usual transition;
- a paid L402 invoice the store does not know (its rows went with a lost WAL): the
  invoice row is restored; the token bought with it cannot be verified (its root key
  row is gone), so the operator is told who paid what for which bounty;
- a funding or stake hold the store does not know: its preimage went with the store,
  so it can never be settled; when the store is known to have lost writes (or names the
  bounty or submission) it is cancelled, which returns the money to the payer;
- the store's record of money the node does not show, and payments the node made
  that the store does not record (a payout that must not be sent twice).

When the store lost writes (``Store.open`` records ``lost_writes``), payouts are
halted until the operator has looked: a payout recorded only in the lost WAL could
otherwise be sent again.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from l402tui.lightning.backend import Invoice, InvoiceState, LightningBackend, LightningError, PaymentState
from l402tui.store import Store
from l402tui.store.findings import FINDING_EVENT

if TYPE_CHECKING:
    from l402tui.coordinator.service import Coordinator

log = logging.getLogger("l402tui.reconcile")

# The descriptions this coordinator writes on its invoices (l402/middleware.py,
# coordinator/publishing.py, coordinator/submissions.py): how a node's invoice is known as ours.
_L402 = re.compile(r"^l402tui: (?P<grants>[a-z]+(?:\+[a-z]+)*) for bounty (?P<bounty>\S+)$")
_FUNDING = re.compile(r"^l402tui: fund bounty (?P<bounty>\S+) \(")
_STAKE = re.compile(r"^l402tui: stake for submission (?P<submission>\S+)$")
_MONEY_IN = (InvoiceState.ACCEPTED, InvoiceState.SETTLED)
_FINAL = ("SETTLED", "CANCELED", "EXPIRED")


@dataclass(frozen=True)
class Discrepancy:
    """One difference between the node and the store, with the sentence an operator reads."""

    kind: str  # l402_token_lost | hold_orphaned | settled_unknown | state_differs | missing_on_node | payment_unknown
    message: str
    payment_hash: str | None = None
    amount_msat: int = 0
    bounty_id: str | None = None
    invoice_kind: str | None = None  # l402 | funding | stake | claim
    node_state: str | None = None
    store_state: str | None = None
    subject: str | None = None  # the submission a stake names

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def describe_invoice(description: str) -> tuple[str, str | None, str | None] | None:
    """(kind, bounty id, submission id) of an invoice this coordinator wrote, else None."""
    if m := _L402.match(description):
        return "l402", m.group("bounty"), None
    if m := _FUNDING.match(description):
        return "funding", m.group("bounty"), None
    if m := _STAKE.match(description):
        return "stake", None, m.group("submission")
    return None


def _sats(msat: int) -> str:
    return f"{msat / 1000:,.0f}" if msat % 1000 == 0 else f"{msat / 1000:,.3f}"


def _agrees(store_status: str, node: InvoiceState) -> bool:
    """Whether the store's status says the same about the money as the node's state."""
    money_in_store = store_status in ("ACCEPTED", "SETTLED", "PAID")
    if node in _MONEY_IN or money_in_store:
        return store_status == node.value or (store_status == "PAID" and node is InvoiceState.SETTLED)
    return True  # unpaid on both sides: OPEN / EXPIRED / CANCELED differ only in bookkeeping


async def find_discrepancies(store: Store, backend: LightningBackend) -> list[Discrepancy]:
    """Compare, change nothing.  Raises LightningError when the node cannot be asked."""
    node_invoices = await backend.list_invoices()
    rows = {r["payment_hash"]: r for r in await store.fetchall(
        "SELECT payment_hash, kind, status, amount_msat, bounty_id, submission_id FROM invoices")}
    found: list[Discrepancy] = []
    on_node = set()
    for inv in node_invoices:
        on_node.add(inv.payment_hash)
        row = rows.get(inv.payment_hash)
        if row is not None:
            if not _agrees(row["status"], inv.state):
                found.append(Discrepancy(
                    "state_differs", f"{row['kind']} invoice {inv.payment_hash} ({_sats(inv.amount_msat)} sat) is "
                    f"{inv.state.value} on the node but {row['status']} in the store",
                    inv.payment_hash, inv.amount_msat, row["bounty_id"], row["kind"], inv.state.value, row["status"],
                    row["submission_id"]))
            continue
        ours = describe_invoice(inv.description)
        if ours is None or inv.state not in _MONEY_IN:
            continue  # not ours (e.g. `l402tui wallet invoice`), or nothing was paid
        found.append(_unknown(inv, *ours))
    for row in rows.values():
        if row["status"] in ("ACCEPTED", "SETTLED", "PAID") and row["payment_hash"] not in on_node:
            found.append(Discrepancy(
                "missing_on_node", f"the store has {row['kind']} invoice {row['payment_hash']} "
                f"({_sats(row['amount_msat'])} sat) as {row['status']}, but the node has no such invoice: "
                "the money it records did not arrive on this node (another node or network configured?)",
                row["payment_hash"], row["amount_msat"], row["bounty_id"], row["kind"], None, row["status"],
                row["submission_id"]))
    found += await _unknown_payments(store, backend)
    return found


def _unknown(inv: Invoice, kind: str, bounty_id: str | None, submission_id: str | None) -> Discrepancy:
    amount = inv.amount_received_msat or inv.amount_msat
    h = inv.payment_hash
    if kind == "l402" and inv.state is InvoiceState.SETTLED:
        grants = _L402.match(inv.description).group("grants").replace("+", ", ")  # type: ignore[union-attr]
        return Discrepancy(
            "l402_token_lost", f"an agent paid {_sats(amount)} sat for an L402 token ({grants}) for bounty "
            f"{bounty_id} (payment hash {h}) that the store lost: the token cannot be verified, so its holder's "
            "requests are refused. If they come forward with the preimage of this hash, refund them or give them "
            "access by hand", h, amount, bounty_id, "l402", inv.state.value, None)
    if inv.state is InvoiceState.ACCEPTED:
        whose = f"bounty {bounty_id}" if kind == "funding" else f"submission {submission_id}"
        return Discrepancy(
            "hold_orphaned", f"the node holds {_sats(amount)} sat on a {kind} hold invoice for {whose} "
            f"(payment hash {h}) that the store does not know: its preimage is gone, so it can never be "
            "settled; cancelling it refunds the payer (it is also refunded automatically near its expiry)",
            h, amount, bounty_id, kind, inv.state.value, None, submission_id)
    return Discrepancy(
        "settled_unknown", f"the node settled {_sats(amount)} sat on a {kind} invoice (payment hash {h}, "
        f"{inv.description!r}) that the store does not know: that money is on the node but on no books",
        h, amount, bounty_id, kind, inv.state.value, None, submission_id)


async def _unknown_payments(store: Store, backend: LightningBackend) -> list[Discrepancy]:
    payments = await backend.list_payments()
    if not payments:
        return []
    known = {r["payment_hash"] for r in await store.fetchall(
        "SELECT payment_hash FROM payments WHERE payment_hash IS NOT NULL")}
    return [Discrepancy(
        "payment_unknown", f"the node sent {_sats(p.amount_msat)} sat (payment hash {p.payment_hash}, "
        f"{p.state.value}) that the store does not record: if it was a payout whose row was lost, "
        "the same payout must not be sent again", p.payment_hash, p.amount_msat, node_state=p.state.value)
        for p in payments if p.state is not PaymentState.FAILED and p.payment_hash not in known]


# -- findings ------------------------------------------------------------------------


async def open_findings(store: Store) -> list[dict[str, Any]]:
    return await store.fetchall("SELECT * FROM store_findings WHERE acknowledged_at IS NULL ORDER BY id")


async def _known(store: Store, kind: str, payment_hash: str | None) -> bool:
    """A finding about this (open or acknowledged) is already written: a restart adds none."""
    return bool(await store.scalar(
        "SELECT 1 FROM store_findings WHERE kind = ? AND payment_hash IS ?", (kind, payment_hash)))


async def unexplained(store: Store, found: list[Discrepancy]) -> list[Discrepancy]:
    """The discrepancies no finding (open or acknowledged) accounts for."""
    return [d for d in found if not await _known(store, d.kind, d.payment_hash)]


async def acknowledge(store: Store, finding_id: int | None, note: str) -> int:
    """Close one open finding (or all with None) with the operator's note; returns how many."""
    where, params = ("AND id = ?", (finding_id,)) if finding_id is not None else ("", ())
    async with store.transaction() as txn:
        n = await txn.execute(f"UPDATE store_findings SET acknowledged_at = ?, note = ? "
                              f"WHERE acknowledged_at IS NULL {where}", (time.time(), note, *params))
        if n:
            await txn.event("store.findings_acknowledged", str(finding_id) if finding_id else None, count=n, note=note)
    return n


async def _record(coord: "Coordinator", d: Discrepancy, action: str | None) -> None:
    async with coord.transaction() as txn:
        await txn.insert("store_findings", {
            "kind": d.kind, "payment_hash": d.payment_hash, "bounty_id": d.bounty_id, "amount_msat": d.amount_msat,
            "message": d.message, "action": action, "found_at": time.time()})
        await txn.event(FINDING_EVENT, d.payment_hash, finding=d.kind, bounty_id=d.bounty_id,
                        amount_sats=d.amount_msat // 1000, action=action)
    log.warning("RECONCILIATION: %s%s", d.message, f" [done: {action}]" if action else "")


# -- at start ------------------------------------------------------------------------


async def reconcile_at_start(coord: "Coordinator") -> list[Discrepancy]:
    """Bring the store in line with the node where the node's record suffices; write down
    and log everything else.  Returns what was found.  Never raises for the node being
    away (logged; the coordinator's tick keeps following known invoices)."""
    lost = await coord.store.fetchall(
        "SELECT id, message, action FROM store_findings WHERE kind = 'lost_writes' AND acknowledged_at IS NULL")
    for row in await open_findings(coord.store):  # every start, until the operator acknowledges them
        log.warning("OPEN FINDING %s (%s): %s  -- when dealt with: l402tui wallet ledger --acknowledge %s "
                    "--note '...'", row["id"], row["kind"], row["message"], row["id"])
    try:
        found = await find_discrepancies(coord.store, coord.backend)
    except LightningError as exc:
        log.warning("could not reconcile the store with the Lightning node at start (%s); "
                    "run `l402tui wallet ledger --check` once the node is up", exc)
        return []
    for d in found:
        if await _known(coord.store, d.kind, d.payment_hash):
            continue
        await _recover(coord, d, store_lost_writes=bool(lost))
    if await _halt_once(coord, [r["id"] for r in lost if r["action"] is None]):
        log.warning("payouts are halted until you have checked `l402tui wallet ledger --check` and resumed them "
                    "(POST /api/v1/admin/payouts/resume): a payout recorded only in the lost writes must not "
                    "be sent twice")
    return found


async def _recover(coord: "Coordinator", d: Discrepancy, *, store_lost_writes: bool) -> None:
    if d.kind == "state_differs" and d.store_state not in _FINAL and d.node_state is not None:
        await coord.apply_invoice_state(d.payment_hash, d.node_state)  # the usual, idempotent transition
        row = await coord.store.fetchone("SELECT status FROM invoices WHERE payment_hash = ?", (d.payment_hash,))
        if row is not None and _agrees(row["status"], InvoiceState(d.node_state)):
            log.info("reconciled %s invoice %s: %s -> %s", d.invoice_kind, d.payment_hash[:12], d.store_state,
                     d.node_state)
            return
        await _record(coord, d, None)
        return
    if d.kind == "l402_token_lost":
        inv = await coord.backend.lookup_invoice(d.payment_hash)  # type: ignore[arg-type]
        async with coord.transaction() as txn:
            await txn.insert("invoices", {
                "payment_hash": inv.payment_hash, "kind": "l402", "bolt11": inv.bolt11, "amount_msat": d.amount_msat,
                "is_hold": 0, "status": "SETTLED", "bounty_id": d.bounty_id, "expires_at": inv.expires_at,
                "created_at": inv.created_at, "updated_at": time.time()}, or_ignore=True)
        await _record(coord, d, "the invoice row was restored from the node; the token stays unverifiable")
        return
    if d.kind == "hold_orphaned":
        ours = store_lost_writes or await _names_ours(coord.store, d)
        if ours:
            try:
                await coord.backend.cancel_hold(d.payment_hash)  # type: ignore[arg-type]
                await _record(coord, d, "cancelled: the payer has their money back")
                return
            except LightningError as exc:
                await _record(coord, d, f"cancelling failed ({exc}); it is refunded at expiry")
                return
        await _record(coord, d, None)
        return
    await _record(coord, d, None)


async def _names_ours(store: Store, d: Discrepancy) -> bool:
    if d.subject:
        return bool(await store.scalar("SELECT 1 FROM submissions WHERE id = ?", (d.subject,)))
    return bool(d.bounty_id and await store.scalar("SELECT 1 FROM bounties WHERE id = ?", (d.bounty_id,)))


async def _halt_once(coord: "Coordinator", finding_ids: list[int]) -> bool:
    """Halt payouts once per lost-writes finding (a resume by the operator sticks)."""
    from l402tui.coordinator import ledger

    if not finding_ids:
        return False
    if await ledger.halted_reason(coord.store) is None:
        await ledger.halt(coord.store, f"the store lost committed writes (finding "
                                       f"{', '.join(map(str, finding_ids))}); payments recorded in them are "
                                       "unknown until checked")
    async with coord.transaction() as txn:
        for finding_id in finding_ids:
            await txn.execute("UPDATE store_findings SET action = 'payouts halted' WHERE id = ?", (finding_id,))
    return True
