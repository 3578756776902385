"""L402 tokens: macaroon V2 mint and verify (lightninglabs/L402, bLIP-0026).

Identifier = u16 version (0) ‖ payment_hash[32] ‖ token_id[32].  Each token's root
key is derived from a master key kept outside the database (rootkeys.py); its
``l402_root_keys`` row records the scope it was sold with, and revoking (or
deleting) the row revokes exactly that token.

Every token carries its scope as caveats (service, capabilities, expiry, bounty);
a macaroon without them opens nothing.  Caveats are checked here rather than by
pymacaroons' verifier, because its verifier answers every failure with the same
"Signatures do not match" and users deserve to hear *which* check failed.
pymacaroons only proves the signature chain.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import struct
import time
from collections import OrderedDict
from dataclasses import dataclass

from pymacaroons import MACAROON_V2, Macaroon, Verifier
from pymacaroons.exceptions import MacaroonException

from l402tui.l402.codec import Credential, TokenRefused, decode_macaroon, parse_authorization, to_std_b64
from l402tui.l402.rootkeys import MasterKeyError, RootKeyStore
from l402tui.store.db import Txn

__all__ = ["CAPABILITIES", "Credential", "MasterKeyError", "MintedToken", "RootKeyStore", "TokenAuthority",
           "TokenRefused", "VerifiedToken", "decode_identifier", "encode_identifier", "macaroon_caveats",
           "parse_authorization", "read_caveats", "to_std_b64"]

ID_VERSION = 0
IDENTIFIER_LEN = 2 + 32 + 32
SERVICE = "bounties"
SERVICE_TIER = 0
CAPABILITIES = ("download", "submit")
LOCATION = "l402tui"


@dataclass(frozen=True)
class MintedToken:
    macaroon_b64: str
    token_id: str
    payment_hash: str
    bounty_id: str
    capabilities: tuple[str, ...]
    valid_until: int


@dataclass(frozen=True)
class VerifiedToken:
    token_id: str
    payment_hash: str
    bounty_id: str
    capabilities: frozenset[str]
    valid_until: int

    def expired(self, now: float) -> bool:
        return now >= self.valid_until


def encode_identifier(payment_hash: bytes, token_id: bytes) -> bytes:
    if len(payment_hash) != 32 or len(token_id) != 32:
        raise ValueError("payment_hash and token_id must be 32 bytes each")
    return struct.pack(">H", ID_VERSION) + payment_hash + token_id


def decode_identifier(identifier: bytes) -> tuple[bytes, bytes]:
    """Returns (payment_hash, token_id); raises TokenRefused for anything else."""
    if len(identifier) != IDENTIFIER_LEN:
        raise TokenRefused("malformed", f"token identifier is {len(identifier)} bytes, expected {IDENTIFIER_LEN}; "
                           "request a new token")
    (version,) = struct.unpack(">H", identifier[:2])
    if version != ID_VERSION:
        raise TokenRefused("malformed", f"token identifier version {version} is not supported (only 0)")
    return identifier[2:34], identifier[34:]


def _caveat_pairs(mac: Macaroon) -> list[tuple[str, str]]:
    pairs = []
    for caveat in mac.first_party_caveats():
        raw = caveat.caveat_id
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        key, sep, value = text.partition("=")
        if sep:
            pairs.append((key.strip(), value.strip()))
    return pairs


def _split_set(value: str) -> frozenset[str]:
    return frozenset(v.strip() for v in value.split(",") if v.strip())


@dataclass(frozen=True)
class _Restrictions:
    services: frozenset[str] | None
    capabilities: frozenset[str] | None
    valid_until: int | None
    bounty_id: str | None


def read_caveats(mac: Macaroon) -> _Restrictions:
    """Fold the caveats, insisting that a repeated caveat only narrows."""
    services: frozenset[str] | None = None
    capabilities: frozenset[str] | None = None
    valid_until: int | None = None
    bounty_id: str | None = None
    for key, value in _caveat_pairs(mac):
        if key == "services":
            new = frozenset(s.partition(":")[0] for s in _split_set(value))
            if services is not None and not new <= services:
                raise TokenRefused("caveat_not_narrowing", f"a later 'services' caveat ({value}) widens an earlier one")
            services = new
        elif key == f"{SERVICE}_capabilities":
            new = _split_set(value)
            if capabilities is not None and not new <= capabilities:
                raise TokenRefused("caveat_not_narrowing",
                                   f"a later capabilities caveat ({value}) widens an earlier one")
            capabilities = new
        elif key == f"{SERVICE}_valid_until":
            try:
                new_t = int(value)
            except ValueError:
                raise TokenRefused("malformed", f"valid_until caveat {value!r} is not a unix time") from None
            if valid_until is not None and new_t > valid_until:
                raise TokenRefused("caveat_not_narrowing", "a later valid_until caveat extends an earlier one")
            valid_until = new_t
        elif key == "bounty_id":
            if bounty_id is not None and value != bounty_id:
                raise TokenRefused("caveat_not_narrowing", "two bounty_id caveats name different bounties")
            bounty_id = value
        # Unknown caveats are skipped, as the spec asks: another service may own them.
    return _Restrictions(services, capabilities, valid_until, bounty_id)


class TokenAuthority:
    """Mints and verifies L402 tokens for this coordinator."""

    def __init__(self, keys: RootKeyStore, *, location: str = LOCATION):
        self.keys = keys
        self.location = location
        # Verified credentials, keyed by the exact macaroon:preimage text.  Checking a
        # repeat costs a dict hit instead of base64 + HMAC chain + SQLite; the cheap
        # per-request checks (expiry, scope, revocation here) still run every time,
        # and an entry older than the key cache's TTL is verified afresh so a key
        # revoked or deleted by another process stops working within that TTL.
        self._verified: OrderedDict[str, tuple[VerifiedToken, float]] = OrderedDict()
        self._revoked_tokens: set[str] = set()

    async def mint(self, txn: Txn, payment_hash: str, bounty_id: str,
                   capabilities: tuple[str, ...] | list[str], valid_until: int) -> MintedToken:
        """A new token recorded in ``txn`` (with the invoice row it pays for).  No event: an
        unpaid offer is not a state change anyone follows (l402/unpaid.py); its payment is."""
        unknown = set(capabilities) - set(CAPABILITIES)
        if unknown or not capabilities:
            raise ValueError(f"capabilities must be some of {', '.join(CAPABILITIES)}, not {sorted(capabilities)}")
        if not bounty_id:
            raise ValueError("a token is always for one bounty")
        token_id = secrets.token_bytes(32)
        identifier = encode_identifier(bytes.fromhex(payment_hash), token_id)
        caps = ",".join(capabilities)
        root_key = await self.keys.put(txn, identifier, token_id=token_id.hex(), payment_hash=payment_hash,
                                       bounty_id=bounty_id, capabilities=caps, event=None)
        # pymacaroons wants the key as text; hex keeps all 256 bits.
        mac = Macaroon(location=self.location, identifier=identifier, key=root_key.hex(), version=MACAROON_V2)
        mac.add_first_party_caveat(f"services={SERVICE}:{SERVICE_TIER}")
        mac.add_first_party_caveat(f"{SERVICE}_capabilities={caps}")
        mac.add_first_party_caveat(f"{SERVICE}_valid_until={int(valid_until)}")
        mac.add_first_party_caveat(f"bounty_id={bounty_id}")
        return MintedToken(to_std_b64(mac.serialize()), token_id.hex(), payment_hash, bounty_id,
                           tuple(capabilities), int(valid_until))

    async def verify(self, credential: Credential, *, capability: str | None = None,
                     bounty_id: str | None = None, now: float | None = None) -> VerifiedToken:
        """Check a credential for one use; raises TokenRefused with the failed check."""
        now = time.time() if now is None else now
        if credential.preimage_hex is None:
            decode_macaroon(credential.macaroon_b64)  # a macaroon that cannot be read is malformed (401)
            raise TokenRefused("missing_preimage", "this token is not paid yet: pay its invoice and send "
                               "'L402 <macaroon>:<preimage>'")
        cache_key = credential.macaroon_b64 + ":" + credential.preimage_hex
        hit = self._verified.get(cache_key)
        fresh = hit is not None and time.monotonic() - hit[1] < self.keys.ttl_s
        if hit is not None and hit[0].token_id in self._revoked_tokens:
            self._verified.pop(cache_key, None)
            raise TokenRefused("revoked", "this token was revoked by the coordinator; buy a new one")
        if fresh:
            token = hit[0]
        else:
            token = await self._verify_full(credential)
            self._verified[cache_key] = (token, time.monotonic())
            if len(self._verified) > 50_000:
                self._verified.popitem(last=False)
        _check_scope(token, capability=capability, bounty_id=bounty_id, now=now)
        return token

    async def revoke(self, token_id: str) -> int:
        self._revoked_tokens.add(token_id)
        self._verified.clear()
        return await self.keys.revoke(token_id)

    async def _verify_full(self, credential: Credential) -> VerifiedToken:
        mac = decode_macaroon(credential.macaroon_b64)
        payment_hash, token_id = decode_identifier(mac.identifier_bytes)
        # Preimage first, as Aperture does: it is the cheapest check and the one
        # a paying client most often gets wrong.
        if not hmac.compare_digest(hashlib.sha256(bytes.fromhex(credential.preimage_hex)).digest(), payment_hash):
            raise TokenRefused("wrong_preimage", "the preimage does not hash to this token's payment hash; "
                               "send the preimage your wallet got for paying this token's invoice")
        minted = await self.keys.get(mac.identifier_bytes)
        readopted = False
        if minted is None:
            # A paid token whose row a lost WAL took: its key derives from the master, so
            # the signature checked below still proves it ours (coordinator/reconcile.py).
            claimed = read_caveats(mac)
            if claimed.bounty_id and claimed.capabilities:
                minted = await self.keys.readopt(mac.identifier_bytes, token_id=token_id.hex(),
                                                 payment_hash=payment_hash.hex(), bounty_id=claimed.bounty_id,
                                                 capabilities=",".join(sorted(claimed.capabilities)))
                readopted = minted is not None
        if minted is None:
            raise TokenRefused("revoked", "this token is unknown to the coordinator or was revoked; buy a new one")
        verifier = Verifier()
        # Accept every caveat here: this step proves only the signature chain;
        # read_caveats() below enforces their meaning with precise reasons.
        verifier.satisfy_general(lambda _caveat: True)
        try:
            verifier.verify(mac, minted.key.hex())
        except MacaroonException:
            raise TokenRefused("bad_signature", "the macaroon signature does not match: it was altered or forged; "
                               "use the token exactly as issued (you may only append caveats)") from None
        r = read_caveats(mac)
        if r.services is None or r.capabilities is None or r.valid_until is None or r.bounty_id is None:
            # Every token this coordinator sells names its service, capabilities, expiry and
            # bounty; one without them would otherwise open every bounty for ever.
            raise TokenRefused("unscoped", "this token does not say which bounty, capabilities and expiry it "
                               "is for; request the route without a token to buy one that does")
        if SERVICE not in r.services:
            raise TokenRefused("wrong_service", f"this token is not valid for the '{SERVICE}' service")
        if r.bounty_id != minted.bounty_id or not r.capabilities <= minted.capabilities:
            # The signature held, so the key is ours; a scope beyond what was sold means it leaked.
            raise TokenRefused("scope_mismatch", "this token's caveats do not match what was sold with it; "
                               "buy a new one")
        if readopted:
            await self.keys.confirm_readopted(mac.identifier_bytes, minted, payment_hash.hex())
        return VerifiedToken(token_id.hex(), payment_hash.hex(), r.bounty_id, r.capabilities, r.valid_until)


def _check_scope(token: VerifiedToken, *, capability: str | None, bounty_id: str | None, now: float) -> None:
    if token.expired(now):
        raise TokenRefused("expired", f"this token expired at unix time {token.valid_until}; buy a new one")
    if bounty_id is not None and token.bounty_id != bounty_id:
        raise TokenRefused("wrong_bounty", f"this token is for bounty {token.bounty_id}, not {bounty_id}; "
                           "request this route without a token to buy one for it")
    if capability is not None and capability not in token.capabilities:
        have = ",".join(sorted(token.capabilities)) or "none"
        raise TokenRefused("missing_capability", f"this token lacks the '{capability}' capability (it has: {have}); "
                           f"request the route without a token to buy one that has it")


def macaroon_caveats(macaroon_b64: str) -> list[str]:
    """The caveat strings of a token (for display and tests)."""
    mac = decode_macaroon(macaroon_b64)
    return [f"{k}={v}" for k, v in _caveat_pairs(mac)]
