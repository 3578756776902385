"""The errors the coordinator service raises, and their wire form.

The classes are :mod:`l402tui.errors` (one hierarchy for the server and every client);
each carries an HTTP status and a stable code so the HTTP app answers without logic of
its own, and a message that says what was wrong and what to do.  ``CoordinatorError``
is the root's name on this side.
"""

from __future__ import annotations

from typing import Any

from l402tui.errors import (BadRequest, Conflict, Forbidden, Invalid, L402TuiError, LimitReached, NotFound,
                            PaymentRequired, TooLarge, Unauthorized, Unavailable, Unreachable, from_response)

CoordinatorError = L402TuiError

__all__ = ["BadRequest", "Conflict", "CoordinatorError", "Forbidden", "Invalid", "L402TuiError", "LimitReached",
           "NotFound", "PaymentRequired", "TooLarge", "Unauthorized", "Unavailable", "Unreachable", "from_response",
           "wire"]


def wire(exc: L402TuiError) -> tuple[int, dict[str, Any], dict[str, str]]:
    """(status, JSON body, headers) of the answer for ``exc``; ``from_response`` reads it back."""
    headers = {"Retry-After": str(exc.details["retry_after_s"])} if "retry_after_s" in exc.details else {}
    return exc.status, exc.to_json(), headers
