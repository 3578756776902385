"""Errors the coordinator service raises for things a caller did or can fix.

Each carries an HTTP status and a stable code so the HTTP app maps them without
logic of its own, and a message that says what was wrong and what to do.
"""

from __future__ import annotations


class CoordinatorError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, details: dict | None = None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.details = details or {}

    def to_json(self) -> dict:
        return {"error": self.code, "message": self.message, **self.details}


class NotFound(CoordinatorError):
    status = 404
    code = "not_found"


class Conflict(CoordinatorError):
    """The request is fine but the thing is in the wrong state (e.g. bounty not OPEN)."""

    status = 409
    code = "conflict"


class Invalid(CoordinatorError):
    status = 422
    code = "invalid"


class LimitReached(CoordinatorError):
    status = 429
    code = "limit_reached"

    def __init__(self, message: str, *, retry_after_s: int, code: str | None = None):
        super().__init__(message, code=code, details={"retry_after_s": retry_after_s})
        self.retry_after_s = retry_after_s


class Unavailable(CoordinatorError):
    status = 503
    code = "unavailable"
