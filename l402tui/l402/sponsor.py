"""Sponsor credentials: macaroons scoped to one sponsor and the bounties it posted.

A sponsor who is not the operator gets a macaroon in one of two ways: it pays the
posting fee over L402 (the identifier carries the fee's payment hash, so the
credential is ``L402 <macaroon>:<preimage>`` like any L402 token), or the operator
invites it (``l402tui sponsor invite``; no payment hash, sent as ``Bearer
<macaroon>``).  Its root key derives from the master key like every token's
(rootkeys.py); its ``l402_root_keys`` row has capabilities ``sponsor`` and no
bounty, so it can never open a bounty's L402 routes, and no L402 or admin
macaroon can open a sponsor route.

Caveats, in the order minted::

    services=sponsor:0
    sponsor_id=<id>
    sponsor_capabilities=post,read,review,manage
    sponsor_valid_until=<unix>

A holder may append caveats that *narrow* (fewer capabilities, an earlier expiry,
``bounty_id=<id>`` to one bounty), e.g. to hand a read-only copy to a watcher;
one that would widen (another sponsor id, a capability not held, a later expiry,
a second bounty) is refused.  Which bounties a sponsor owns is not in the
macaroon: the ``sponsor_bounties`` row written when it posts one says so, and
every bounty route checks it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from pymacaroons import MACAROON_V2, Macaroon, Verifier
from pymacaroons.exceptions import MacaroonException

from l402tui.l402.codec import decode_macaroon, parse_authorization, to_std_b64
from l402tui.l402.codec import TokenRefused
from l402tui.l402.rootkeys import RootKeyStore
from l402tui.l402.tokens import _caveat_pairs, _split_set, decode_identifier, encode_identifier
from l402tui.store import Store
from l402tui.store.db import Txn

SERVICE = "sponsor"
ROW_CAPABILITY = "sponsor"  # l402_root_keys.capabilities of every sponsor token
CAPABILITIES = ("post", "read", "review", "manage")
NO_PAYMENT = b"\x00" * 32  # an invite's identifier: nothing was paid, the credential is a Bearer macaroon
INVITE, PAID = "invite", "paid"


class SponsorRefused(Exception):
    """A sponsor credential that does not open this route; ``reason`` is a stable code."""

    def __init__(self, reason: str, message: str, status: int = 401):
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.status = status


@dataclass(frozen=True)
class MintedSponsor:
    macaroon_b64: str
    sponsor_id: str
    token_id: str
    payment_hash: str | None
    valid_until: int


@dataclass(frozen=True)
class SponsorCredential:
    """A verified sponsor credential, narrowed by every caveat its holder appended."""

    sponsor_id: str
    token_id: str
    capabilities: frozenset[str]
    valid_until: int
    bounty_id: str | None  # set: this copy is limited to one bounty
    payment_hash: str | None  # the posting fee it was bought with (None: an invite)

    def may(self, capability: str) -> bool:
        return capability in self.capabilities


@dataclass(frozen=True)
class _Scope:
    services: frozenset[str] | None
    sponsor_id: str | None
    capabilities: frozenset[str] | None
    valid_until: int | None
    bounty_id: str | None


def read_sponsor_caveats(mac: Macaroon) -> _Scope:
    """Fold the caveats; a repeated one must narrow (or, for ids, repeat the same value)."""
    services = capabilities = None
    sponsor_id = bounty_id = None
    valid_until: int | None = None
    for key, value in _caveat_pairs(mac):
        if key == "services":
            new = frozenset(s.partition(":")[0] for s in _split_set(value))
            if services is not None and not new <= services:
                raise SponsorRefused("caveat_not_narrowing", f"a later 'services' caveat ({value[:80]!r}) widens an earlier one")
            services = new
        elif key == "sponsor_id":
            if sponsor_id is not None and value != sponsor_id:
                raise SponsorRefused("caveat_not_narrowing", "two sponsor_id caveats name different sponsors")
            sponsor_id = value
        elif key == f"{SERVICE}_capabilities":
            new = _split_set(value)
            if capabilities is not None and not new <= capabilities:
                raise SponsorRefused("caveat_not_narrowing", f"a later capabilities caveat ({value[:80]!r}) widens an earlier one")
            capabilities = new
        elif key == f"{SERVICE}_valid_until":
            try:
                new_t = int(value)
            except ValueError:
                raise SponsorRefused("malformed", f"valid_until caveat {value[:40]!r} is not a unix time") from None
            if valid_until is not None and new_t > valid_until:
                raise SponsorRefused("caveat_not_narrowing", "a later valid_until caveat extends an earlier one")
            valid_until = new_t
        elif key == "bounty_id":
            if bounty_id is not None and value != bounty_id:
                raise SponsorRefused("caveat_not_narrowing", "two bounty_id caveats name different bounties")
            bounty_id = value
        # Unknown caveats are skipped, as L402 asks: another service may own them.
    return _Scope(services, sponsor_id, capabilities, valid_until, bounty_id)


def read_header(header: str | None) -> tuple[str, str | None]:
    """(macaroon, preimage or None) from ``L402 <mac>:<preimage>`` (a paid credential) or
    ``Bearer <mac>`` (an invite).  Raises SponsorRefused for anything else."""
    usage = ("sponsor routes need 'Authorization: L402 <macaroon>:<preimage>' (a credential bought with the "
             "posting fee) or 'Authorization: Bearer <macaroon>' (one the operator issued)")
    if not header:
        raise SponsorRefused("missing", usage)
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip(), None
    try:
        credential = parse_authorization(header)
    except TokenRefused as exc:
        raise SponsorRefused("malformed", exc.message) from None
    if credential is None:
        raise SponsorRefused("missing", usage)
    return credential.macaroon_b64, credential.preimage_hex


class SponsorAuthority:
    """Mints sponsor credentials and verifies them on every sponsor request."""

    def __init__(self, store: Store, keys: RootKeyStore | None = None, *, location: str = "l402tui"):
        self.store = store
        self.keys = keys or RootKeyStore(store)
        self.location = location

    async def new_sponsor(self, txn: Txn, *, origin: str, name: str | None = None) -> str:
        sponsor_id = "sp_" + secrets.token_hex(8)
        await txn.insert("sponsors", {"id": sponsor_id, "name": name, "origin": origin, "created_at": time.time()})
        await txn.event("sponsor.created", sponsor_id, origin=origin, name=name)
        return sponsor_id

    async def mint(self, txn: Txn, sponsor_id: str, *, valid_until: int, payment_hash: str | None = None,
                   posts_allowed: int | None = None,
                   capabilities: tuple[str, ...] = CAPABILITIES) -> MintedSponsor:
        """A credential for ``sponsor_id`` recorded in ``txn``.  With ``payment_hash`` it is
        bound to that invoice (the posting fee) and needs its preimage on every use."""
        unknown = set(capabilities) - set(CAPABILITIES)
        if unknown or not capabilities:
            raise ValueError(f"sponsor capabilities must be some of {', '.join(CAPABILITIES)}")
        token_id = secrets.token_bytes(32)
        identifier = encode_identifier(bytes.fromhex(payment_hash) if payment_hash else NO_PAYMENT, token_id)
        caps = ",".join(capabilities)
        root_key = await self.keys.put(txn, identifier, token_id=token_id.hex(), payment_hash=payment_hash,
                                       bounty_id=None, capabilities=ROW_CAPABILITY, event="sponsor.token_minted")
        await txn.insert("sponsor_tokens", {"token_id": token_id.hex(), "sponsor_id": sponsor_id,
                                            "payment_hash": payment_hash, "posts_allowed": posts_allowed,
                                            "posts_used": 0, "created_at": time.time()})
        mac = Macaroon(location=self.location, identifier=identifier, key=root_key.hex(), version=MACAROON_V2)
        mac.add_first_party_caveat(f"services={SERVICE}:0")
        mac.add_first_party_caveat(f"sponsor_id={sponsor_id}")
        mac.add_first_party_caveat(f"{SERVICE}_capabilities={caps}")
        mac.add_first_party_caveat(f"{SERVICE}_valid_until={int(valid_until)}")
        return MintedSponsor(to_std_b64(mac.serialize()), sponsor_id, token_id.hex(), payment_hash, int(valid_until))

    async def invite(self, *, name: str | None, valid_until: int, posts_allowed: int | None = None) -> MintedSponsor:
        """A new sponsor the operator knows, with a credential that needs no payment."""
        async with self.store.transaction() as txn:
            sponsor_id = await self.new_sponsor(txn, origin=INVITE, name=name)
            return await self.mint(txn, sponsor_id, valid_until=valid_until, posts_allowed=posts_allowed)

    async def remove(self, sponsor_id: str) -> bool:
        """Refuse every credential of a sponsor from now on (its bounties stay as they are)."""
        async with self.store.transaction() as txn:
            changed = await txn.execute("UPDATE sponsors SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                                        (time.time(), sponsor_id))
            if changed:
                await txn.event("sponsor.removed", sponsor_id)
        return bool(changed)

    async def verify(self, header: str | None, *, now: float | None = None) -> SponsorCredential:
        """The credential in an Authorization header, checked; raises SponsorRefused naming the check."""
        now = time.time() if now is None else now
        text, preimage = read_header(header)
        try:
            mac = decode_macaroon(text)
            payment_hash, token_id = decode_identifier(mac.identifier_bytes)
        except TokenRefused as exc:
            raise SponsorRefused("malformed", exc.message) from None
        paid = payment_hash != NO_PAYMENT
        if paid:
            if preimage is None:
                raise SponsorRefused("missing_preimage", "this sponsor credential was bought with the posting fee: "
                                     "send 'L402 <macaroon>:<preimage>' with the preimage of that payment")
            if not hmac.compare_digest(hashlib.sha256(bytes.fromhex(preimage)).digest(), payment_hash):
                raise SponsorRefused("wrong_preimage", "the preimage does not hash to this credential's payment "
                                     "hash; send the preimage your wallet got for the posting fee")
        minted = await self.keys.get(mac.identifier_bytes)
        row = await self.store.fetchone(
            "SELECT t.sponsor_id, s.revoked_at FROM sponsor_tokens t JOIN sponsors s ON s.id = t.sponsor_id "
            "WHERE t.token_id = ?", (token_id.hex(),))
        if minted is None or row is None or minted.capabilities != frozenset({ROW_CAPABILITY}):
            # An L402 bounty token or the admin macaroon lands here too: neither is a sponsor's.
            raise SponsorRefused("not_a_sponsor", "this is not a sponsor credential of this coordinator, or it was "
                                 "revoked; buy one with POST /api/v1/sponsor/bounties or ask the operator for an invite")
        if row["revoked_at"] is not None:
            raise SponsorRefused("revoked", "this sponsor was removed by the operator")
        verifier = Verifier()
        verifier.satisfy_general(lambda _caveat: True)  # the signature only; meanings are checked below
        try:
            verifier.verify(mac, minted.key.hex())
        except MacaroonException:
            raise SponsorRefused("bad_signature", "the sponsor macaroon's signature does not match: it was altered "
                                 "(you may only append caveats)") from None
        scope = read_sponsor_caveats(mac)
        if scope.services is None or scope.sponsor_id is None or scope.capabilities is None \
                or scope.valid_until is None:
            raise SponsorRefused("unscoped", "this credential does not name its sponsor, capabilities and expiry")
        if SERVICE not in scope.services:
            raise SponsorRefused("wrong_service", "this credential is not valid for sponsor routes")
        if scope.sponsor_id != row["sponsor_id"] or not scope.capabilities <= set(CAPABILITIES):
            raise SponsorRefused("scope_mismatch", "this credential's caveats do not match what was issued with it")
        if now >= scope.valid_until:
            raise SponsorRefused("expired", f"this sponsor credential expired at unix time {scope.valid_until}; "
                                 "ask the operator for a new invite, or pay the posting fee again")
        return SponsorCredential(row["sponsor_id"], token_id.hex(), scope.capabilities, scope.valid_until,
                                 scope.bounty_id, payment_hash.hex() if paid else None)


def credential_header(text: str) -> str:
    """The Authorization header for a credential file's text: ``mac:preimage`` -> L402, ``mac`` -> Bearer."""
    text = text.strip()
    mac, sep, preimage = text.partition(":")
    return f"L402 {mac}:{preimage}" if sep else f"Bearer {mac}"


def attenuate(credential_text: str, *caveats: str) -> str:
    """A copy of a credential with caveats appended (narrower: the server refuses any that widen)."""
    text = credential_text.strip()
    mac_text, sep, preimage = text.partition(":")
    mac = decode_macaroon(mac_text)
    for caveat in caveats:
        mac.add_first_party_caveat(caveat)
    narrowed = to_std_b64(mac.serialize())
    return f"{narrowed}:{preimage}" if sep else narrowed
