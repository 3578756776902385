"""Reading L402 credentials and macaroons strictly: one macaroon, one preimage, no trailing bytes.

pymacaroons decodes a macaroon and silently ignores whatever follows it (base64
junk, extra binary bytes), and a lax header regex lets a client append anything
after the preimage.  Both would make two different strings mean the same token,
so everything here is decoded and then checked to be exactly the canonical form.
"""

from __future__ import annotations

import base64
import binascii
import re
import struct
from dataclasses import dataclass

from pymacaroons import MACAROON_V2, Macaroon
from pymacaroons.exceptions import MacaroonException
from pymacaroons.serializers import BinarySerializer

SCHEMES = ("L402", "LSAT")
# scheme, one or more spaces, the macaroon text, then optionally ':' and the preimage text.
# The parts are validated separately below so each failure gets its own message.
_CREDENTIAL_RE = re.compile(r"^(?P<scheme>[A-Za-z0-9]+) +(?P<macs>[^\s:]+)(?::(?P<pre>\S*))?$")
_B64_RE = re.compile(r"^[A-Za-z0-9+/_-]+={0,2}$")
_HEX64_RE = re.compile(r"^[0-9a-fA-F]{64}$")
MAX_MACAROON_CHARS = 8192  # ours are ~250; a cap keeps a hostile header from costing much


class TokenRefused(Exception):
    """A credential that does not grant access.  ``reason`` is a stable code
    (shown in refusal bodies and tested); the message says what to do.

    ``malformed`` means the header itself cannot be read (HTTP 401); every other
    reason is a well-formed credential that cannot open the route (HTTP 402 with a
    fresh challenge, as the L402 spec asks)."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message

    @property
    def malformed(self) -> bool:
        return self.reason == "malformed"


@dataclass(frozen=True)
class Credential:
    scheme: str  # "L402" or "LSAT", upper-cased
    macaroon_b64: str
    preimage_hex: str | None  # None: the client sent the macaroon without a preimage (not paid yet)


def _malformed(message: str) -> TokenRefused:
    return TokenRefused("malformed", message)


def parse_authorization(header: str | None) -> Credential | None:
    """The L402/LSAT credential in an Authorization header, None if it uses another scheme.

    Schemes are case-insensitive (RFC 7235).  A list of macaroons, a preimage that is
    not exactly 64 hex digits, or anything after it raise TokenRefused("malformed").
    """
    if not header:
        return None
    text = header.strip(" \t")
    scheme = text.split(" ", 1)[0].upper()
    if scheme not in SCHEMES:
        return None
    m = _CREDENTIAL_RE.match(text)
    if not m:
        raise _malformed(f"Authorization must be '{scheme} <base64 macaroon>:<64-hex preimage>' "
                         "with nothing before or after it")
    macs, pre = m.group("macs"), m.group("pre")
    if "," in macs:
        # The spec allows several macaroons (for discharges of third-party caveats);
        # this coordinator issues exactly one per token, so a list is refused rather
        # than read as its first element.
        raise _malformed("send exactly one macaroon: this coordinator issues single-macaroon tokens "
                         "and does not accept a comma-separated list")
    if len(macs) > MAX_MACAROON_CHARS or not _B64_RE.match(macs):
        raise _malformed("the macaroon must be the base64 text from the challenge, unchanged")
    if pre is not None and pre != "" and not _HEX64_RE.match(pre):
        raise _malformed("the preimage must be exactly 64 hex digits (the payment's preimage) "
                         "with nothing after it")
    return Credential(scheme, macs, pre.lower() if pre else None)


def decode_base64_strict(text: str) -> bytes:
    """Standard or URL-safe base64, padding optional; anything else raises ValueError."""
    if not _B64_RE.match(text) or ("-" in text or "_" in text) and ("+" in text or "/" in text):
        raise ValueError("not base64")
    body = text.rstrip("=")
    if len(body) % 4 == 1 or len(text) - len(body) > (-len(body) % 4):
        raise ValueError("bad base64 length or padding")
    padded = body.replace("-", "+").replace("_", "/") + "=" * (-len(body) % 4)
    return base64.b64decode(padded, validate=True)


def decode_macaroon(text: str) -> Macaroon:
    """A V2 binary macaroon from its base64 text, refusing trailing bytes or a non-canonical form."""
    try:
        raw = decode_base64_strict(text)
    except (ValueError, binascii.Error):
        raise _malformed("the macaroon is not valid base64; send the token exactly as received") from None
    if not raw or raw[0] != 0x02:
        raise _malformed("only V2 binary macaroons are accepted; send the token exactly as received")
    try:
        mac = BinarySerializer().deserialize_raw(raw)
        canonical = BinarySerializer().serialize_raw(mac)
    except (MacaroonException, ValueError, TypeError, IndexError, KeyError, UnicodeDecodeError,
            struct.error) as exc:
        raise _malformed(f"the macaroon cannot be decoded ({exc}); send the token exactly as received") from None
    if canonical != raw or mac.version != MACAROON_V2:
        # Same signature, extra bytes: refuse, or junk could ride along on a valid token.
        raise _malformed("the macaroon has bytes after its end (or is not in canonical form); "
                         "send the token exactly as received")
    return mac


def to_std_b64(urlsafe_nopad: str) -> str:
    """pymacaroons emits URL-safe base64 without padding; L402 clients expect standard base64."""
    raw = base64.urlsafe_b64decode(urlsafe_nopad + "=" * (-len(urlsafe_nopad) % 4))
    return base64.b64encode(raw).decode("ascii")
