"""One error hierarchy for everything a user, an agent or a network can cause.

The coordinator raises these; its HTTP app sends them as ``{"error": <code>, "message":
<text>, ...details}`` with the class's status (:meth:`L402TuiError.to_json`); every client
(the admin client, the agent's client, the L402 client) turns such an answer back into
the same class with :func:`from_response`.  A caller catches by meaning — ``Conflict``,
``Unavailable`` — whichever side of the wire it is on.  Transport failures (refused
connection, timeout) are :class:`Unreachable`, an :class:`Unavailable`: try again later.

Standard library only: any layer may import this module.
"""

from __future__ import annotations

from typing import Any


class L402TuiError(Exception):
    """Something went wrong that the message explains; ``status`` and ``code`` say what kind."""

    status = 500
    code = "internal"

    def __init__(self, message: str, *, code: str | None = None, details: dict[str, Any] | None = None,
                 status: int | None = None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        if status is not None:  # an answer with a status no class stands for keeps its own
            self.status = status
        self.details = dict(details or {})

    def to_json(self) -> dict[str, Any]:
        """The wire form (the body the coordinator answers with)."""
        return {"error": self.code, "message": self.message, **self.details}


class BadRequest(L402TuiError):
    """The request could not be read at all (not JSON, wrong content type)."""

    status = 400
    code = "bad_request"


class Unauthorized(L402TuiError):
    status = 401
    code = "unauthorized"


class PaymentRequired(L402TuiError):
    """An L402 route that needs (another) paid token; the answer carries a challenge."""

    status = 402
    code = "payment_required"


class Forbidden(L402TuiError):
    status = 403
    code = "forbidden"


class NotFound(L402TuiError):
    status = 404
    code = "not_found"


class Conflict(L402TuiError):
    """The request is fine but the thing is in the wrong state (e.g. bounty not OPEN)."""

    status = 409
    code = "conflict"


class TooLarge(L402TuiError):
    status = 413
    code = "too_large"


class Invalid(L402TuiError):
    """The request was read but a field is wrong; the message (and ``details``) name it."""

    status = 422
    code = "invalid"


class LimitReached(L402TuiError):
    status = 429
    code = "limit_reached"

    def __init__(self, message: str, *, retry_after_s: int, code: str | None = None,
                 details: dict[str, Any] | None = None):
        super().__init__(message, code=code, details={**(details or {}), "retry_after_s": retry_after_s})
        self.retry_after_s = retry_after_s


class Unavailable(L402TuiError):
    """Not now: the coordinator, its node or a dependency cannot serve this yet; retry later."""

    status = 503
    code = "unavailable"


class Unreachable(Unavailable):
    """No answer at all: connection refused, reset, or timed out."""

    code = "unreachable"


_BY_STATUS: dict[int, type[L402TuiError]] = {
    cls.status: cls for cls in (BadRequest, Unauthorized, PaymentRequired, Forbidden, NotFound, Conflict,
                                TooLarge, Invalid, LimitReached, Unavailable)}
_BY_STATUS.update({502: Unavailable, 504: Unavailable})  # a proxy in front of a coordinator that is down


def from_response(status: int, body: Any, *, context: str = "", retry_after: str | None = None) -> L402TuiError:
    """The error an HTTP answer stands for (``status`` >= 400): the class of its status, the
    server's code, message and details; ``context`` (what was being done) prefixes the message."""
    if isinstance(body, dict):
        message = body.get("message") or body.get("reason") or f"HTTP {status}"
        code = body.get("error") if isinstance(body.get("error"), str) else None
        details = {k: v for k, v in body.items() if k not in ("error", "message")}
    else:
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body or "")
        message, code, details = text.strip()[:300] or f"HTTP {status}", None, {}
    if context:
        message = f"{context}: {message}"
    cls = _BY_STATUS.get(status)
    if cls is LimitReached:
        seconds = details.pop("retry_after_s", None)
        try:
            wait = int(retry_after if retry_after is not None else seconds if seconds is not None else 1)
        except (TypeError, ValueError):
            wait = 1
        return LimitReached(message, retry_after_s=max(0, wait), code=code, details=details)
    if cls is None:
        return L402TuiError(message, code=code, details=details, status=status)
    return cls(message, code=code, details=details)
