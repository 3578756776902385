#!/usr/bin/env python3
"""l402tui hold invoices for Core Lightning: a pyln-client plugin lightningd loads.

    lightningd --plugin=/path/to/cln_holdinvoice.py --l402tui-hold-safety-blocks=6

RPCs: ``holdinvoice`` (payment_hash, amount_msat, description, expiry, cltv),
``holdinvoicesettle`` (preimage[, payment_hash]), ``holdinvoicecancel`` (payment_hash),
``holdinvoicelookup`` (payment_hash), ``listholdinvoices``, and
``waitanyholdinvoice`` (lastindex, timeout) which answers the next state change
(error 904 on timeout, like ``waitanyinvoice``).

The ``htlc_accepted`` hook holds HTLCs paying our hashes (after checking payment
secret, amount including MPP parts, and CLTV), resolves them with the preimage on
settle, fails them on cancel, and answers ``continue`` for every other HTLC.
State lives in CLN's datastore under ``l402tui-hold``, written *before* any HTLC is
resolved, so when lightningd replays HTLCs at start-up the answer is the same and
nothing is settled twice.  On ``block_added`` held HTLCs within the safety margin
of their CLTV expiry are failed back.

Beside another hold-invoice plugin (daywalker90's ``holdinvoice``, Boltz's ``hold``)
these names collide and lightningd refuses to load us: ``cln_holdinvoice_prefixed.py``
runs this same plugin with the methods renamed ``l402tui-hold-invoice``, ``-settle``,
``-cancel``, ``-lookup``, ``-list`` and ``-waitany`` (L402TUI_HOLD_PREFIXED=1).

Self-contained on purpose (pyln-client and bolt11 only) so it can be copied next
to a lightningd that does not have l402tui installed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time

from pyln.client import Plugin, RpcException

plugin = Plugin()
# Method names are fixed at getmanifest, before any option arrives: an environment
# variable (set by cln_holdinvoice_prefixed.py) chooses them.
if os.environ.get("L402TUI_HOLD_PREFIXED") == "1":
    NAMES = {"create": "l402tui-hold-invoice", "settle": "l402tui-hold-settle", "cancel": "l402tui-hold-cancel",
             "lookup": "l402tui-hold-lookup", "list": "l402tui-hold-list", "wait": "l402tui-hold-waitany"}
else:
    NAMES = {"create": "holdinvoice", "settle": "holdinvoicesettle", "cancel": "holdinvoicecancel",
             "lookup": "holdinvoicelookup", "list": "listholdinvoices", "wait": "waitanyholdinvoice"}
plugin.add_option("l402tui-hold-safety-blocks", "6",
                  "Fail held HTLCs back this many blocks before their CLTV expiry", opt_type="int")
plugin.add_option("l402tui-hold-mpp-timeout", "60",
                  "Fail the parts of an incomplete multi-part payment after this many seconds", opt_type="int")

ROOT = "l402tui-hold"
CURRENCY = {"regtest": "bcrt", "testnet": "tb", "signet": "tbs", "bitcoin": "bc"}
ERR_NOT_FOUND, ERR_WRONG_PREIMAGE, ERR_STATE, ERR_BAD_REQUEST, ERR_TIMEOUT = 4101, 4102, 4103, 4104, 904
_HEX32 = re.compile(r"^[0-9a-f]{64}$")


class HoldBook:
    """Hold invoices (cached from the datastore) and the hook requests we are holding."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.records: dict[str, dict] = {}
        self.held: dict[str, dict[str, object]] = {}  # payment_hash -> htlc key -> hook request
        self.waiters: list[tuple[int, object]] = []   # (lastindex, waitanyholdinvoice request)
        self.index = 0
        self.height = 0
        self.network = "regtest"
        self.safety_blocks = 6
        self.mpp_timeout_s = 60.0


book = HoldBook()


def _msat(value) -> int:
    """lightningd sends msat as integers (and, historically, as '123msat' strings)."""
    return int(str(value).removesuffix("msat"))


def _check_hex32(value, what: str) -> str:
    if not isinstance(value, str) or not _HEX32.match(value.lower()):
        raise RpcException(f"{what} must be 64 hex characters, got {value!r}", ERR_BAD_REQUEST)
    return value.lower()


def _save(record: dict) -> dict:
    """Bump the change index and write the record through to the datastore."""
    book.index += 1
    record["updated_index"] = book.index
    record["updated_at"] = time.time()
    plugin.rpc.call("datastore", {"key": [ROOT, "invoices", record["payment_hash"]],
                                  "string": json.dumps(record), "mode": "create-or-replace"})
    plugin.rpc.call("datastore", {"key": [ROOT, "index"], "string": str(book.index),
                                  "mode": "create-or-replace"})
    book.records[record["payment_hash"]] = record
    _answer_waiters()
    return record


def _public(record: dict) -> dict:
    out = {k: v for k, v in record.items() if k not in ("payment_secret",)}
    if out["state"] != "SETTLED":
        out.pop("preimage", None)
    return out


def _answer_waiters() -> None:
    still = []
    for lastindex, request in book.waiters:
        newer = sorted((r for r in book.records.values() if r["updated_index"] > lastindex),
                       key=lambda r: r["updated_index"])
        if newer:
            request.set_result(_public(newer[0]))
        else:
            still.append((lastindex, request))
    book.waiters = still


def _failure(amount_msat: int) -> str:
    # incorrect_or_unknown_payment_details (PERM|15) with htlc_msat and our height, so
    # the payer cannot tell a wrong amount from an unknown or cancelled invoice.
    return f"400f{amount_msat:016x}{book.height:08x}"


def _release(payment_hash: str, answer: dict | None, fail: bool = False) -> None:
    for key, request in book.held.pop(payment_hash, {}).items():
        request.set_result(answer if not fail else {"result": "fail",
                                                    "failure_message": _failure(book.records[payment_hash]
                                                                                ["htlcs"][key]["amount_msat"])})


def _cancel(record: dict, reason: str) -> dict:
    record.update(state="CANCELED", reason=reason)
    _save(record)
    _release(record["payment_hash"], None, fail=True)
    return record


@plugin.init()
def init(options, configuration, plugin, **kwargs):
    book.safety_blocks = int(options.get("l402tui-hold-safety-blocks", 6))
    book.mpp_timeout_s = float(options.get("l402tui-hold-mpp-timeout", 60))
    info = plugin.rpc.call("getinfo")
    book.height = int(info.get("blockheight", 0))
    book.network = info.get("network", "regtest")
    entries = plugin.rpc.call("listdatastore", {"key": [ROOT, "invoices"]}).get("datastore", [])
    for entry in entries:
        if "string" in entry:
            record = json.loads(entry["string"])
            book.records[record["payment_hash"]] = record
    stored = plugin.rpc.call("listdatastore", {"key": [ROOT, "index"]}).get("datastore", [])
    # A crash between writing a record and the counter must not reuse an index.
    book.index = max([int(stored[0]["string"]) if stored else 0] +
                     [r["updated_index"] for r in book.records.values()])
    plugin.log(f"l402tui hold invoices: {len(book.records)} known, height {book.height}, "
               f"safety margin {book.safety_blocks} blocks")


@plugin.method(NAMES["create"])
def holdinvoice(plugin, payment_hash, amount_msat, description, expiry=3600, cltv=144):
    """Create a hold invoice for PAYMENT_HASH; the preimage stays with the caller."""
    payment_hash = _check_hex32(payment_hash, "payment_hash")
    amount_msat, expiry, cltv = _msat(amount_msat), int(expiry), int(cltv)
    if amount_msat <= 0 or expiry <= 0:
        raise RpcException("amount_msat and expiry must be positive", ERR_BAD_REQUEST)
    if cltv <= book.safety_blocks:
        raise RpcException(f"cltv ({cltv}) must exceed the safety margin of {book.safety_blocks} blocks "
                           "(l402tui-hold-safety-blocks)", ERR_BAD_REQUEST)
    with book.lock:
        if payment_hash in book.records:
            raise RpcException(f"a hold invoice for {payment_hash} already exists", ERR_BAD_REQUEST)
        now = int(time.time())
        secret = os.urandom(32).hex()
        bolt11 = plugin.rpc.call("signinvoice", {"invstring": _unsigned_bolt11(
            payment_hash, secret, amount_msat, description, expiry, cltv, now)})["bolt11"]
        record = {"payment_hash": payment_hash, "bolt11": bolt11, "amount_msat": amount_msat,
                  "description": description, "state": "OPEN", "payment_secret": secret, "created_at": now,
                  "expires_at": now + expiry, "cltv": cltv, "htlcs": {}, "amount_received_msat": 0,
                  "cltv_expiry": None, "settled_at": None, "preimage": None}
        return _public(_save(record))


def _unsigned_bolt11(payment_hash, secret, amount_msat, description, expiry, cltv, now) -> str:
    """An invoice signed with a throwaway key; ``signinvoice`` re-signs it as our node."""
    from bolt11 import Bolt11, MilliSatoshi, encode
    from bolt11.models.features import Feature, Features, FeatureState
    from bolt11.models.tags import TagChar, Tags

    tags = Tags()
    tags.add(TagChar.payment_hash, payment_hash)
    tags.add(TagChar.payment_secret, secret)
    tags.add(TagChar.description, description)
    tags.add(TagChar.expire_time, expiry)
    tags.add(TagChar.min_final_cltv_expiry, cltv)
    # As lightningd's own invoices: var_onion_optin and payment_secret required, basic_mpp
    # optional (the hook collects the parts of a multi-part payment).
    tags.add(TagChar.features, Features.from_feature_list({Feature.var_onion_optin: FeatureState.required,
                                                           Feature.payment_secret: FeatureState.required,
                                                           Feature.basic_mpp: FeatureState.supported}))
    invoice = Bolt11(currency=CURRENCY.get(book.network, "bcrt"), date=now, tags=tags,
                     amount_msat=MilliSatoshi(amount_msat))
    return encode(invoice, os.urandom(32).hex())


def _find(payment_hash: str) -> dict:
    record = book.records.get(payment_hash)
    if record is None:
        raise RpcException(f"no hold invoice with payment hash {payment_hash}", ERR_NOT_FOUND)
    return record


@plugin.method(NAMES["settle"])
def holdinvoicesettle(plugin, preimage, payment_hash=None):
    """Settle an ACCEPTED hold invoice with its preimage (idempotent)."""
    preimage = _check_hex32(preimage, "preimage")
    actual = hashlib.sha256(bytes.fromhex(preimage)).hexdigest()
    if payment_hash is not None and _check_hex32(payment_hash, "payment_hash") != actual:
        raise RpcException(f"sha256(preimage) is {actual}, not the payment hash {payment_hash}: this is "
                           "not the preimage of that hold invoice; nothing was settled", ERR_WRONG_PREIMAGE)
    with book.lock:
        record = book.records.get(actual)
        if record is None:
            raise RpcException(f"sha256(preimage) = {actual} matches no hold invoice; settle with the preimage "
                               "whose hash you gave holdinvoice", ERR_WRONG_PREIMAGE)
        if record["state"] == "SETTLED":
            return _public(record)
        if record["state"] != "ACCEPTED":
            raise RpcException(f"cannot settle hold invoice {actual}: it is {record['state']}", ERR_STATE)
        if book.height >= record["cltv_expiry"] - book.safety_blocks:
            _cancel(record, f"auto-cancelled at height {book.height}: too close to HTLC expiry")
            raise RpcException(f"cannot settle hold invoice {actual}: the held HTLC was within "
                               f"{book.safety_blocks} blocks of expiry, so it was failed back", ERR_STATE)
        # Persist first: if we die now, the replayed HTLCs are resolved from this record.
        record.update(state="SETTLED", preimage=preimage, settled_at=time.time())
        _save(record)
        _release(actual, {"result": "resolve", "payment_key": preimage})
        return _public(record)


@plugin.method(NAMES["cancel"])
def holdinvoicecancel(plugin, payment_hash):
    """Cancel a hold invoice, failing any held HTLC back to the payer (idempotent)."""
    with book.lock:
        record = _find(_check_hex32(payment_hash, "payment_hash"))
        if record["state"] == "SETTLED":
            raise RpcException(f"hold invoice {payment_hash} is already settled; it cannot be cancelled",
                               ERR_STATE)
        if record["state"] != "CANCELED":
            _cancel(record, "cancelled by the payee")
        return _public(record)


@plugin.method(NAMES["lookup"])
def holdinvoicelookup(plugin, payment_hash):
    """One hold invoice and its state."""
    with book.lock:
        record = _find(_check_hex32(payment_hash, "payment_hash"))
        _expire_if_due(record)
        return _public(record)


@plugin.method(NAMES["list"])
def listholdinvoices(plugin):
    """Every hold invoice, with the current change index."""
    with book.lock:
        for record in list(book.records.values()):
            _expire_if_due(record)
        return {"holdinvoices": [_public(r) for r in sorted(book.records.values(), key=lambda r: r["created_at"])],
                "lastindex": book.index}


@plugin.async_method(NAMES["wait"])
def waitanyholdinvoice(plugin, request, lastindex=0, timeout=None):
    """Answer the first hold invoice changed after LASTINDEX; error 904 after TIMEOUT seconds."""
    with book.lock:
        book.waiters.append((int(lastindex), request))
        _answer_waiters()
    if timeout is not None:
        def expire() -> None:
            with book.lock:
                for item in list(book.waiters):
                    if item[1] is request:
                        book.waiters.remove(item)
                        request.set_exception(RpcException("Timed out", ERR_TIMEOUT))

        timer = threading.Timer(float(timeout), expire)
        timer.daemon = True
        timer.start()


def _expire_if_due(record: dict) -> None:
    if record["state"] == "OPEN" and time.time() >= record["expires_at"]:
        record["state"] = "EXPIRED"
        _save(record)
        _release(record["payment_hash"], None, fail=True)


@plugin.async_hook("htlc_accepted")
def on_htlc_accepted(onion, htlc, request, plugin, **kwargs):
    payment_hash = htlc["payment_hash"].lower()
    with book.lock:
        record = book.records.get(payment_hash)
        if record is None:
            request.set_result({"result": "continue"})  # not ours: lightningd's own invoices
            return
        key = f"{htlc.get('short_channel_id', '?')}/{htlc.get('id', '?')}"
        amount = _msat(htlc["amount_msat"])
        fail = {"result": "fail", "failure_message": _failure(amount)}
        state = record["state"]
        if state == "SETTLED":
            request.set_result({"result": "resolve", "payment_key": record["preimage"]})  # replay after settle
            return
        if state in ("CANCELED", "EXPIRED"):
            request.set_result(fail)
            return
        if key in record["htlcs"]:
            # lightningd replays HTLCs we had not answered when we stopped: hold again,
            # already checked and counted.
            book.held.setdefault(payment_hash, {})[key] = request
            return
        _expire_if_due(record)
        if record["state"] == "EXPIRED":
            request.set_result(fail)
            return
        cltv_expiry = int(htlc["cltv_expiry"])
        total = _msat(onion.get("total_msat", amount))
        problems = []
        if onion.get("payment_secret", "").lower() != record["payment_secret"]:
            problems.append("wrong payment secret")
        if _msat(onion.get("forward_msat", amount)) > amount:
            problems.append("HTLC carries less than the onion says")
        if total < record["amount_msat"] or total > 2 * record["amount_msat"]:
            problems.append(f"amount {total} msat does not match the invoice's {record['amount_msat']} msat")
        if cltv_expiry - book.height < record["cltv"]:
            problems.append(f"CLTV expiry {cltv_expiry} is less than {record['cltv']} blocks away")
        if problems:
            plugin.log(f"failing HTLC {key} for {payment_hash}: {'; '.join(problems)}")
            request.set_result(fail)
            return
        record["htlcs"][key] = {"amount_msat": amount, "cltv_expiry": cltv_expiry}
        book.held.setdefault(payment_hash, {})[key] = request
        received = sum(h["amount_msat"] for h in record["htlcs"].values())
        if state == "OPEN" and received >= total:
            record.update(state="ACCEPTED", amount_received_msat=received,
                          cltv_expiry=min(h["cltv_expiry"] for h in record["htlcs"].values()))
            _save(record)
        elif state == "OPEN" and len(record["htlcs"]) == 1:
            timer = threading.Timer(book.mpp_timeout_s, _mpp_timeout, (payment_hash,))
            timer.daemon = True
            timer.start()


def _mpp_timeout(payment_hash: str) -> None:
    """Like lightningd for its own invoices: parts of a set that never completed go back
    with mpp_timeout (0x0017), and the invoice stays payable."""
    with book.lock:
        record = book.records.get(payment_hash)
        if record is None or record["state"] != "OPEN" or not record["htlcs"]:
            return
        for request in book.held.pop(payment_hash, {}).values():
            request.set_result({"result": "fail", "failure_message": "0017"})
        plugin.log(f"multi-part payment for {payment_hash} incomplete after {book.mpp_timeout_s:g} s: failed back")
        record["htlcs"] = {}


@plugin.subscribe("block_added")
def on_block_added(plugin, block_added=None, **kwargs):
    block = block_added or kwargs.get("block") or {}
    with book.lock:
        book.height = max(book.height, int(block.get("height", book.height)))
        for record in list(book.records.values()):
            if record["state"] == "ACCEPTED" and book.height >= record["cltv_expiry"] - book.safety_blocks:
                _cancel(record, f"auto-cancelled at height {book.height}: the held HTLC expires at height "
                                f"{record['cltv_expiry']} and the safety margin is {book.safety_blocks} blocks")
            elif record["state"] == "OPEN" and record["htlcs"] and book.height >= min(
                    h["cltv_expiry"] for h in record["htlcs"].values()) - book.safety_blocks:
                _cancel(record, "incomplete multi-part payment near expiry")
            else:
                _expire_if_due(record)


if __name__ == "__main__":
    plugin.run()
