"""Domain exceptions every layer raises; shared/http/errors.py alone maps them to HTTP replies."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import ValidationError


class DomainError(Exception):
    """Base of every error a use case may raise on purpose; `details` must never hold a secret."""

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}


class ValidationFailed(DomainError):
    """The input is malformed or breaks a rule (422)."""


class AuthenticationFailed(DomainError):
    """No valid credentials were presented (401)."""


class Forbidden(DomainError):
    """The caller is known but may not do this (403)."""


class NotFound(DomainError):
    """The resource does not exist or belongs to someone else (404)."""


class Gone(DomainError):
    """The route or resource existed and was retired on purpose (410)."""


class Conflict(DomainError):
    """The request clashes with the current state (409)."""


class RateLimited(DomainError):
    """Too many requests; `retry_after` is in seconds (429)."""

    def __init__(self, message: str, retry_after: int, details: dict[str, Any] | None = None):
        super().__init__(message, details)
        self.retry_after = retry_after


class DependencyUnavailable(DomainError):
    """A dependency (database, pubsub, cloud_tasks, a provider) cannot be reached (503)."""

    def __init__(self, dependency: str, message: str, details: dict[str, Any] | None = None):
        super().__init__(message, {"dependency": dependency, **(details or {})})
        self.dependency = dependency


class ProviderRefused(ValidationFailed):
    """The provider rejected the credentials, or they carry a write permission (422)."""


class ProviderUnavailable(DependencyUnavailable):
    """The provider is down, timing out or rate limiting us; nothing was stored (503)."""

    def __init__(self, provider: str, message: str, details: dict[str, Any] | None = None):
        super().__init__(provider, message, details)
        self.provider = provider


def field_errors(error: ValidationError, prefix: str) -> dict[str, Any]:
    """A pydantic error as `details`: each field's problem, unknown fields named; never the input
    (it may hold a credential)."""
    problems, unknown = [], []
    for item in error.errors(include_input=False, include_url=False, include_context=False):
        location = ".".join([prefix, *(str(part) for part in item["loc"])])
        if item["type"] == "extra_forbidden":
            unknown.append(location)
        else:
            problems.append({"field": location, "message": item["msg"], "type": item["type"]})
    details: dict[str, Any] = {"errors": problems}
    if unknown:
        details["unknown_fields"] = unknown
    return details
