"""Domain errors and the one JSON error body every error response uses.

Routes and services raise these; the web layer turns them (and Bottle's own
HTTP errors) into ``{"error": {"code", "message", "fields"}}`` with the right
status. Nothing else builds error bodies.
"""

from __future__ import annotations

from typing import Any


def error_body(code: str, message: str, fields: dict[str, str] | None = None) -> dict[str, Any]:
    """The one JSON error shape: {"error": {"code", "message", "fields"?}}."""
    error: dict[str, Any] = {"code": code, "message": message}
    if fields:
        error["fields"] = fields
    return {"error": error}


class ApiError(Exception):
    """An error with an HTTP status, a stable code and a human message."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, fields: dict[str, str] | None = None,
                 code: str | None = None, status: int | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return error_body(self.code, self.message, self.fields)


class ValidationFailed(ApiError):
    status = 400
    code = "validation_failed"


class BadJson(ApiError):
    status = 400
    code = "bad_json"


class Unauthorized(ApiError):
    status = 401
    code = "unauthorized"


class Forbidden(ApiError):
    status = 403
    code = "forbidden"


class NotFound(ApiError):
    status = 404
    code = "not_found"


class Conflict(ApiError):
    status = 409
    code = "conflict"


class PayloadTooLarge(ApiError):
    status = 413
    code = "payload_too_large"


class TooManyAttempts(ApiError):
    """A client (or everyone) failed to sign in too often; Retry-After says when to try again."""

    status = 429
    code = "too_many_attempts"


class DatabaseUnavailable(ApiError):
    """The database cannot be reached; requests get 503 and the server stays up."""

    status = 503
    code = "database_unavailable"

    def __init__(self, message: str = "the database is unreachable; try again shortly") -> None:
        super().__init__(message)


# Codes for statuses that Bottle raises itself (routing, methods, body size).
STATUS_CODES: dict[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    414: "uri_too_long",
    429: "too_many_attempts",
    500: "internal_error",
    503: "database_unavailable",
}
