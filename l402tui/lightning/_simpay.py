"""Money movements on the simulated network, each one SQLite transaction.

Every payment is routed through one simulated routing node that charges
``base_fee_msat + amount * fee_ppm / 1e6``.  Paying a plain invoice settles at once;
paying a hold invoice moves ``amount + fee`` out of the payer's balance into a held
HTLC (payment PENDING, invoice ACCEPTED) until the payee settles (payee credited,
fee collected) or cancels / the HTLC nears expiry (payer refunded in full).
"""

from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import dataclass

from l402tui.lightning._bolt11 import (DecodedInvoice, NodeKey, check_hex32, decode_invoice,
                                       encode_invoice, sha256_hex)
from l402tui.lightning._simledger import SimLedger, cancel_accepted
from l402tui.lightning.backend import (InvalidRequest, InvalidState, InvoiceNotFound,
                                       WrongPreimage)


@dataclass(frozen=True)
class PayOutcome:
    """The payment row after an attempt; ``error_kind`` names the exception to raise."""

    payment: sqlite3.Row
    error_kind: str | None = None


_key_cache: dict[str, NodeKey] = {}


def node_key(seed_hex: str) -> NodeKey:
    key = _key_cache.get(seed_hex)
    if key is None:
        key = _key_cache[seed_hex] = NodeKey.from_seed(seed_hex)
    return key


def create_invoice(ledger: SimLedger, node: str, *, amount_msat: int, description: str,
                   expiry_s: int, payment_hash: str, preimage: str | None, is_hold: bool,
                   cltv_delta: int, safety_blocks: int) -> sqlite3.Row:
    if amount_msat < 0:
        raise InvalidRequest(f"amount_msat must be >= 0 (0 means any amount), got {amount_msat}")
    if is_hold and amount_msat <= 0:
        raise InvalidRequest("a hold invoice needs a positive amount_msat")
    if expiry_s <= 0:
        raise InvalidRequest(f"expiry_s must be positive, got {expiry_s}")
    if is_hold and cltv_delta <= safety_blocks:
        raise InvalidRequest(f"cltv_delta ({cltv_delta}) must exceed the hold safety margin "
                             f"({safety_blocks} blocks, lightning.hold_safety_blocks), or the hold "
                             "would be cancelled as soon as it is paid")
    row = ledger.node_row(node)
    now = time.time()
    payment_secret = os.urandom(32).hex()
    bolt11 = encode_invoice(key=node_key(row["seed"]), network=ledger.params.network,
                            payment_hash=payment_hash, payment_secret=payment_secret,
                            amount_msat=amount_msat, description=description, expiry_s=expiry_s,
                            cltv_delta=cltv_delta, timestamp=int(now))
    try:
        with ledger.txn() as c:
            c.execute(
                "INSERT INTO invoices(payment_hash, node, bolt11, payment_secret, amount_msat, description, "
                "is_hold, preimage, state, created_at, expires_at, cltv_delta, safety_blocks) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'OPEN', ?, ?, ?, ?)",
                (payment_hash, node, bolt11, payment_secret, amount_msat, description, int(is_hold),
                 preimage, now, int(now) + expiry_s, cltv_delta, safety_blocks if is_hold else 0))
            return c.execute("SELECT * FROM invoices WHERE payment_hash = ?", (payment_hash,)).fetchone()
    except sqlite3.IntegrityError:
        raise InvalidRequest(f"an invoice for payment hash {payment_hash} already exists on the "
                             "simulated network; every invoice needs a fresh preimage") from None


def _record_payment(c: sqlite3.Connection, payer: str, payment_hash: str, *, destination: str | None,
                    amount_msat: int, fee_msat: int, state: str, now: float, kind: str = "bolt11",
                    preimage: str | None = None, error: str | None = None) -> sqlite3.Row:
    # A retry after a failure replaces the failed attempt (as listpays shows the latest).
    c.execute("INSERT OR REPLACE INTO payments(payer, payment_hash, destination, amount_msat, fee_msat, "
              "state, preimage, error, kind, created_at, resolved_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
              (payer, payment_hash, destination, amount_msat, fee_msat, state, preimage, error, kind, now,
               None if state == "PENDING" else now))
    return c.execute("SELECT * FROM payments WHERE payer = ? AND payment_hash = ?",
                     (payer, payment_hash)).fetchone()


def pay(ledger: SimLedger, payer: str, bolt11: str, *, amount_msat: int | None,
        max_fee_msat: int | None) -> PayOutcome:
    now = time.time()
    conn = ledger.conn
    inv = conn.execute("SELECT * FROM invoices WHERE bolt11 = ?", (bolt11.strip(),)).fetchone()
    decoded: DecodedInvoice | None = None
    if inv is None:
        # Not a string we issued: decode it (signature checked) to find who it is for.
        decoded = decode_invoice(bolt11)
        if decoded.currency != "bcrt" and ledger.params.network == "regtest":
            raise InvalidRequest(f"this invoice is for network '{decoded.currency}', but the simulated "
                                 "network is regtest (invoices start with lnbcrt)")
    payment_hash = inv["payment_hash"] if inv is not None else decoded.payment_hash

    with ledger.txn() as c:
        payer_row = c.execute("SELECT * FROM nodes WHERE name = ?", (payer,)).fetchone()
        if payer_row is None:
            raise ledger.unknown_node(payer)
        if inv is None:
            inv = c.execute("SELECT * FROM invoices WHERE payment_hash = ?", (payment_hash,)).fetchone()
            payee = c.execute("SELECT name FROM nodes WHERE pubkey = ?", (decoded.payee,)).fetchone()
        else:
            inv = c.execute("SELECT * FROM invoices WHERE payment_hash = ?", (payment_hash,)).fetchone()
            payee = (inv["node"],)
        destination_name = payee[0] if payee else None

        def fail(kind: str, error: str, amount: int = 0, fee: int = 0) -> PayOutcome:
            row = _record_payment(c, payer, payment_hash, destination=destination_name, amount_msat=amount,
                                  fee_msat=fee, state="FAILED", now=now, error=error)
            return PayOutcome(row, kind)

        if destination_name is None:
            return fail("no_route", f"no route to {decoded.payee}: it is not a node of this simulated "
                                    f"network ({ledger.path})")
        if destination_name == payer:
            raise InvalidRequest(f"node {payer!r} cannot pay its own invoice")

        previous = c.execute("SELECT * FROM payments WHERE payer = ? AND payment_hash = ?",
                             (payer, payment_hash)).fetchone()
        if previous is not None and previous["state"] in ("PENDING", "COMPLETE"):
            return PayOutcome(previous)  # idempotent: never pay twice

        if ledger.take_fault(c, (payer, destination_name), "no_route") is not None:
            return fail("no_route", f"no route from {payer} to {destination_name} (injected failure)")

        if inv is None or (decoded is not None and decoded.payment_secret != inv["payment_secret"]):
            return fail("rejected", f"{destination_name} rejected the payment: "
                                    "incorrect_or_unknown_payment_details (it has no such invoice)")
        if inv["state"] in ("SETTLED", "ACCEPTED"):
            return fail("rejected", f"{destination_name} rejected the payment: the invoice is already paid")
        if inv["state"] == "CANCELED":
            return fail("rejected", f"{destination_name} rejected the payment: the invoice was cancelled")
        if inv["state"] == "EXPIRED" or now >= inv["expires_at"]:
            if inv["state"] == "OPEN":
                c.execute("UPDATE invoices SET state = 'EXPIRED' WHERE payment_hash = ?", (payment_hash,))
                ledger.log_change(c, inv["node"], payment_hash, "EXPIRED", inv["amount_msat"],
                                  bool(inv["is_hold"]), now)
            return fail("expired", f"the invoice expired at {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(inv['expires_at']))}; "
                                   "ask the payee for a new one")

        invoice_amount = inv["amount_msat"]
        if invoice_amount == 0 and not amount_msat:
            raise InvalidRequest("this invoice has no amount: pass amount_msat")
        amount = amount_msat or invoice_amount
        if amount < invoice_amount:
            return fail("rejected", f"{destination_name} rejected the payment: {amount} msat is below the "
                                    f"invoice amount {invoice_amount} msat (incorrect_or_unknown_payment_details)")
        if invoice_amount and amount > 2 * invoice_amount:
            raise InvalidRequest(f"refusing to pay {amount} msat for a {invoice_amount} msat invoice "
                                 "(more than twice the amount)")
        fee = ledger.fee_for(amount)
        if max_fee_msat is not None and fee > max_fee_msat:
            return fail("fee", f"the route costs {fee} msat in fees, above the limit of {max_fee_msat} msat",
                        amount)
        if ledger.take_fault(c, (payer,), "insufficient_balance") is not None:
            return fail("balance", f"{payer} has not enough outbound liquidity for {amount} msat "
                                   "(injected failure)", amount, fee)
        if payer_row["balance_msat"] < amount + fee:
            return fail("balance", f"{payer} has {payer_row['balance_msat']} msat; paying {amount} msat "
                                   f"plus {fee} msat routing fee needs {amount + fee}", amount, fee)

        c.execute("UPDATE nodes SET balance_msat = balance_msat - ? WHERE name = ?", (amount + fee, payer))
        if inv["is_hold"]:
            cltv_expiry = ledger.height(now) + inv["cltv_delta"]
            c.execute("UPDATE invoices SET state = 'ACCEPTED', paid_by = ?, amount_received_msat = ?, "
                      "cltv_expiry = ? WHERE payment_hash = ?", (payer, amount, cltv_expiry, payment_hash))
            ledger.log_change(c, inv["node"], payment_hash, "ACCEPTED", amount, True, now,
                              cltv_expiry=cltv_expiry)
            row = _record_payment(c, payer, payment_hash, destination=destination_name, amount_msat=amount,
                                  fee_msat=fee, state="PENDING", now=now)
            return PayOutcome(row)
        c.execute("UPDATE nodes SET balance_msat = balance_msat + ? WHERE name = ?", (amount, inv["node"]))
        ledger._add_meta_int(c, "fees_msat", fee)
        c.execute("UPDATE invoices SET state = 'SETTLED', paid_by = ?, amount_received_msat = ?, settled_at = ? "
                  "WHERE payment_hash = ?", (payer, amount, now, payment_hash))
        ledger.log_change(c, inv["node"], payment_hash, "SETTLED", amount, False, now)
        row = _record_payment(c, payer, payment_hash, destination=destination_name, amount_msat=amount,
                              fee_msat=fee, state="COMPLETE", now=now, preimage=inv["preimage"])
        return PayOutcome(row)


def keysend(ledger: SimLedger, payer: str, destination_pubkey: str, amount_msat: int,
            max_fee_msat: int | None, preimage: str | None = None) -> PayOutcome:
    if amount_msat <= 0:
        raise InvalidRequest(f"keysend needs a positive amount_msat, got {amount_msat}")
    now = time.time()
    preimage = check_hex32(preimage, "preimage") if preimage is not None else os.urandom(32).hex()
    payment_hash = sha256_hex(preimage)
    with ledger.txn() as c:
        payer_row = c.execute("SELECT * FROM nodes WHERE name = ?", (payer,)).fetchone()
        if payer_row is None:
            raise ledger.unknown_node(payer)
        payee = c.execute("SELECT name FROM nodes WHERE pubkey = ?", (destination_pubkey.lower(),)).fetchone()

        def fail(kind: str, error: str, fee: int = 0) -> PayOutcome:
            row = _record_payment(c, payer, payment_hash, destination=payee[0] if payee else None,
                                  amount_msat=amount_msat, fee_msat=fee, state="FAILED", now=now,
                                  kind="keysend", error=error)
            return PayOutcome(row, kind)

        if payee is None:
            return fail("no_route", f"no route to {destination_pubkey}: not a node of this simulated network")
        if payee[0] == payer:
            raise InvalidRequest(f"node {payer!r} cannot keysend to itself")
        previous = c.execute("SELECT * FROM payments WHERE payer = ? AND payment_hash = ?",
                             (payer, payment_hash)).fetchone()
        if previous is not None and previous["state"] in ("PENDING", "COMPLETE"):
            return PayOutcome(previous)  # the same preimage again: already paid, never twice
        if c.execute("SELECT 1 FROM invoices WHERE payment_hash = ?", (payment_hash,)).fetchone():
            return fail("rejected", f"{payee[0]} rejected the keysend: its payment hash is already in use")
        if ledger.take_fault(c, (payer, payee[0]), "no_route") is not None:
            return fail("no_route", f"no route from {payer} to {payee[0]} (injected failure)")
        fee = ledger.fee_for(amount_msat)
        if max_fee_msat is not None and fee > max_fee_msat:
            return fail("fee", f"the route costs {fee} msat in fees, above the limit of {max_fee_msat} msat")
        if ledger.take_fault(c, (payer,), "insufficient_balance") is not None:
            return fail("balance", f"{payer} has not enough outbound liquidity (injected failure)", fee)
        if payer_row["balance_msat"] < amount_msat + fee:
            return fail("balance", f"{payer} has {payer_row['balance_msat']} msat; sending {amount_msat} msat "
                                   f"plus {fee} msat routing fee needs {amount_msat + fee}", fee)
        c.execute("UPDATE nodes SET balance_msat = balance_msat - ? WHERE name = ?", (amount_msat + fee, payer))
        c.execute("UPDATE nodes SET balance_msat = balance_msat + ? WHERE name = ?", (amount_msat, payee[0]))
        ledger._add_meta_int(c, "fees_msat", fee)
        # The receiver books a keysend as a settled invoice, as CLN's keysend plugin does.
        c.execute("INSERT INTO invoices(payment_hash, node, amount_msat, description, is_hold, preimage, state, "
                  "created_at, expires_at, cltv_delta, paid_by, amount_received_msat, settled_at, label) "
                  "VALUES (?, ?, ?, ?, 0, ?, 'SETTLED', ?, ?, 0, ?, ?, ?, 'keysend')",
                  (payment_hash, payee[0], amount_msat, f"keysend from {payer_row['pubkey']}", preimage,
                   now, now, payer, amount_msat, now))
        ledger.log_change(c, payee[0], payment_hash, "SETTLED", amount_msat, False, now, keysend=True)
        row = _record_payment(c, payer, payment_hash, destination=payee[0], amount_msat=amount_msat,
                              fee_msat=fee, state="COMPLETE", now=now, kind="keysend", preimage=preimage)
        return PayOutcome(row)


def _own_hold(c: sqlite3.Connection, node: str, payment_hash: str) -> sqlite3.Row:
    inv = c.execute("SELECT * FROM invoices WHERE payment_hash = ? AND node = ?", (payment_hash, node)).fetchone()
    if inv is None:
        raise InvoiceNotFound(f"node {node!r} has no invoice with payment hash {payment_hash}")
    if not inv["is_hold"]:
        raise InvalidState(f"invoice {payment_hash} is a plain invoice, not a hold invoice")
    return inv


def settle(ledger: SimLedger, node: str, preimage: str, payment_hash: str | None) -> sqlite3.Row:
    preimage = check_hex32(preimage, "preimage")
    actual_hash = sha256_hex(preimage)
    if payment_hash is not None:
        payment_hash = check_hex32(payment_hash, "payment_hash")
        if actual_hash != payment_hash:
            raise WrongPreimage(f"sha256(preimage) is {actual_hash}, not the payment hash {payment_hash}: "
                                "this is not the preimage of that hold invoice; nothing was settled")
    now = time.time()
    with ledger.txn() as c:
        inv = c.execute("SELECT * FROM invoices WHERE payment_hash = ? AND node = ?", (actual_hash, node)).fetchone()
        if inv is None:
            raise WrongPreimage(f"sha256(preimage) = {actual_hash} matches no invoice of node {node!r}; "
                                "settle with the preimage whose hash you gave create_hold_invoice")
        inv = _own_hold(c, node, actual_hash)
        if inv["state"] == "SETTLED":
            return inv  # idempotent
        if inv["state"] != "ACCEPTED":
            what = {"OPEN": "it has not been paid yet (wait for ACCEPTED)",
                    "CANCELED": "it was cancelled and the payer refunded",
                    "EXPIRED": "it expired unpaid"}[inv["state"]]
            raise InvalidState(f"cannot settle hold invoice {actual_hash}: {what}")
        height = ledger.height(now)
        if height >= inv["cltv_expiry"] - inv["safety_blocks"]:
            cancel_accepted(ledger, c, inv, now, reason=(
                f"auto-cancelled at height {height}: too close to HTLC expiry at {inv['cltv_expiry']}"))
            settled = False
        else:
            payment = c.execute("SELECT * FROM payments WHERE payer = ? AND payment_hash = ?",
                                (inv["paid_by"], actual_hash)).fetchone()
            c.execute("UPDATE nodes SET balance_msat = balance_msat + ? WHERE name = ?",
                      (payment["amount_msat"], node))
            ledger._add_meta_int(c, "fees_msat", payment["fee_msat"])
            c.execute("UPDATE payments SET state = 'COMPLETE', preimage = ?, resolved_at = ? "
                      "WHERE payer = ? AND payment_hash = ?", (preimage, now, inv["paid_by"], actual_hash))
            c.execute("UPDATE invoices SET state = 'SETTLED', preimage = ?, settled_at = ? WHERE payment_hash = ?",
                      (preimage, now, actual_hash))
            ledger.log_change(c, node, actual_hash, "SETTLED", inv["amount_received_msat"], True, now)
            settled = True
        row = c.execute("SELECT * FROM invoices WHERE payment_hash = ?", (actual_hash,)).fetchone()
    if not settled:
        raise InvalidState(f"cannot settle hold invoice {actual_hash}: the held HTLC was within "
                           f"{inv['safety_blocks']} blocks of expiry, so it was cancelled and the payer refunded")
    return row


def cancel(ledger: SimLedger, node: str, payment_hash: str) -> sqlite3.Row:
    payment_hash = check_hex32(payment_hash, "payment_hash")
    now = time.time()
    with ledger.txn() as c:
        inv = _own_hold(c, node, payment_hash)
        if inv["state"] == "SETTLED":
            raise InvalidState(f"hold invoice {payment_hash} is already settled; it cannot be cancelled")
        if inv["state"] == "ACCEPTED":
            cancel_accepted(ledger, c, inv, now, reason="cancelled by the payee")
        elif inv["state"] in ("OPEN", "EXPIRED"):
            c.execute("UPDATE invoices SET state = 'CANCELED' WHERE payment_hash = ?", (payment_hash,))
            ledger.log_change(c, node, payment_hash, "CANCELED", 0, True, now, reason="cancelled by the payee")
        return c.execute("SELECT * FROM invoices WHERE payment_hash = ?", (payment_hash,)).fetchone()
