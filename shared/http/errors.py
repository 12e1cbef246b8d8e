"""The one place where domain exceptions become the envelope's error codes and HTTP statuses."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shared import errors


@dataclass(frozen=True)
class ApiError(Exception):
    """An error reply: HTTP status, envelope code, a message for humans, safe details."""

    status: int
    code: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


# Envelope codes of DESIGN.md §7, plus the few the transport itself needs.
CODES: dict[str, int] = {
    "VALIDATION_ERROR": 422,
    "AUTHENTICATION_ERROR": 401,
    "AUTHORIZATION_ERROR": 403,
    "NOT_FOUND": 404,
    "METHOD_NOT_ALLOWED": 405,
    "CONFLICT": 409,
    "PAYLOAD_TOO_LARGE": 413,
    "RATE_LIMIT_ERROR": 429,
    "INTERNAL_ERROR": 500,
    "SERVICE_UNAVAILABLE": 503,
}

_DOMAIN: dict[type[errors.DomainError], tuple[int, str]] = {
    errors.ValidationFailed: (422, "VALIDATION_ERROR"),
    errors.AuthenticationFailed: (401, "AUTHENTICATION_ERROR"),
    errors.Forbidden: (403, "AUTHORIZATION_ERROR"),
    errors.NotFound: (404, "NOT_FOUND"),
    # CONTRACT.md: retired routes answer 410 with the code NOT_FOUND.
    errors.Gone: (410, "NOT_FOUND"),
    errors.Conflict: (409, "CONFLICT"),
    errors.RateLimited: (429, "RATE_LIMIT_ERROR"),
    errors.DependencyUnavailable: (503, "SERVICE_UNAVAILABLE"),
}


def from_domain(error: errors.DomainError) -> ApiError:
    """The reply for a domain exception raised by a service."""
    for kind in type(error).__mro__:
        if kind in _DOMAIN:
            status, code = _DOMAIN[kind]
            break
    else:  # a DomainError subclass nobody mapped is a bug, not a client error
        status, code = 500, "INTERNAL_ERROR"
    headers = {}
    if isinstance(error, errors.RateLimited):
        headers["Retry-After"] = str(error.retry_after)
    return ApiError(status, code, error.message, dict(error.details), headers)


def validation_error(message: str, details: dict[str, Any] | None = None) -> ApiError:
    return ApiError(422, "VALIDATION_ERROR", message, details or {})


def not_found(message: str = "no such resource") -> ApiError:
    return ApiError(404, "NOT_FOUND", message)


def method_not_allowed(allowed: list[str]) -> ApiError:
    return ApiError(
        405,
        "METHOD_NOT_ALLOWED",
        "method not allowed on this route",
        {"allowed": allowed},
        {"Allow": ", ".join(allowed)},
    )


def internal_error() -> ApiError:
    # Never the exception text: it may quote a query, a payload or a secret.
    return ApiError(500, "INTERNAL_ERROR", "internal error; quote the request_id when reporting it")
