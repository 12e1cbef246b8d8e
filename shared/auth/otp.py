"""Email sign-in codes as plain values: generation, keyed hashing, usability and the rate limit.

Pure: no database, clock or network. The service (shared/services/otp.py) feeds in rows and the
database's clock, and stores what comes out.
"""

from __future__ import annotations

import hmac
import math
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from shared.auth.keys import derive, keyed_hash

CODE_DIGITS = 6
CODE_LIFETIME = timedelta(minutes=5)
MAX_FAILED_ATTEMPTS = 5
# CONTRACT.md: at most 5 code requests per address and 100 per client IP in 15 minutes.
RATE_WINDOW = timedelta(minutes=15)
MAX_REQUESTS_PER_EMAIL = 5
MAX_REQUESTS_PER_IP = 100


def generate_code() -> str:
    """A uniformly random 6-digit code from the OS CSPRNG; leading zeros are kept."""
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


def code_key(secret_key: str) -> bytes:
    """The key that hashes codes (its own derivation: it signs nothing else)."""
    return derive(secret_key, "otp")


def hash_code(key: bytes, email: str, code: str) -> str:
    """What is stored for `code` sent to `email`.

    The address is part of the hashed value, so a code only ever matches the row of the address it
    was sent to. `email` must be normalised; the code's fixed length keeps `email:code` unambiguous.
    """
    return keyed_hash(key, f"{email}:{code}")


def code_matches(key: bytes, email: str, code: str, stored_hash: str) -> bool:
    """Whether `code` is the one stored for `email`, compared in constant time."""
    return hmac.compare_digest(hash_code(key, email, code), stored_hash)


def email_fingerprint(secret_key: str, email: str) -> str:
    """A stable pseudonym of an address for logs: correlates lines without revealing the address."""
    return keyed_hash(derive(secret_key, "log-email"), email)[:16]


class Rejection(StrEnum):
    """Why a code was refused; logged, never told to the caller."""

    NO_CODE = "no_code"
    CONSUMED = "consumed"
    EXPIRED = "expired"
    ATTEMPTS_EXHAUSTED = "attempts_exhausted"
    WRONG_CODE = "wrong_code"


@dataclass(frozen=True)
class CodeState:
    """The parts of a stored code that decide whether it can still be used."""

    expires_at: datetime
    failed_attempts: int
    consumed_at: datetime | None


def unusable(state: CodeState | None, now: datetime) -> Rejection | None:
    """Why the newest code of an address cannot be tried at `now`, or None when it can."""
    if state is None:
        return Rejection.NO_CODE
    if state.consumed_at is not None:
        return Rejection.CONSUMED
    if state.failed_attempts >= MAX_FAILED_ATTEMPTS:
        return Rejection.ATTEMPTS_EXHAUSTED
    if now >= state.expires_at:
        return Rejection.EXPIRED
    return None


@dataclass(frozen=True)
class Window:
    """Code requests of one address or one IP inside the rate window ending now."""

    count: int
    oldest: datetime | None


def retry_after(
    window: Window, limit: int, now: datetime, length: timedelta = RATE_WINDOW
) -> int | None:
    """None when one more request fits under `limit`; else whole seconds (at least 1) until the
    oldest request of the window leaves it."""
    if window.count < limit:
        return None
    if window.oldest is None:
        return math.ceil(length.total_seconds())
    return max(1, math.ceil((window.oldest + length - now).total_seconds()))


def request_retry_after(address: Window, ip: Window, now: datetime) -> int | None:
    """The rate decision for a new code request: None to allow it, else the Retry-After seconds."""
    waits = [
        wait
        for wait in (
            retry_after(address, MAX_REQUESTS_PER_EMAIL, now),
            retry_after(ip, MAX_REQUESTS_PER_IP, now),
        )
        if wait is not None
    ]
    return max(waits) if waits else None
