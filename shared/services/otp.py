"""Email OTP sign-in: request a code (rate-limited, mailed) and verify it into a session.

Decisions:
- A new code supersedes the address's earlier ones: they expire the moment it is issued, and only
  the newest code of an address is ever checked. One live code at a time keeps the guessing bound
  at 5 tries per code (a pile of live codes would multiply an attacker's odds per try).
- The mail is sent inside the unit of work that stores the code. If it cannot be sent, the
  transaction rolls back: the new code is not kept, the earlier code still works, and the failed
  attempt does not count against the address's limit. (A crash between send and commit leaves a
  mailed code that is not stored: it fails like any wrong code and the user asks again.)
- Request and verify never look users up: a known and an unknown address take the same path, get
  the same reply and the same mail; the first successful verify creates the user.
- Time is the database's clock, read after the address lock, so the order of codes and the rate
  window agree with the order in which requests were serialized.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import func, select, text, update
from sqlalchemy.orm import InstrumentedAttribute, Session

from shared.auth import otp
from shared.auth.tokens import TokenSigner
from shared.config import Settings
from shared.db.engine import unit_of_work
from shared.db.models import OtpCode
from shared.errors import AuthenticationFailed, DependencyUnavailable, RateLimited
from shared.mail import Mailer, sign_in_code_mail
from shared.services.auth import SignedIn, normalise_email, sign_in

log = logging.getLogger("coinfrs.otp")

# One message for every refused code, so a reply never tells an unknown address from an expired,
# spent, exhausted or wrong code.
REFUSED = "the code is wrong or has expired; request a new one"
MAIL_FAILED = "the sign-in email could not be sent; try again"
# First key of the two-key advisory lock: OTP requests' own lock space.
_LOCK_SPACE = 0x07_0001


def _clock(db: Session) -> datetime:
    # clock_timestamp(), not now(): now() is when the transaction began, possibly before it
    # waited for the address lock.
    return db.execute(select(func.clock_timestamp())).scalar_one()


def _window(
    db: Session, column: InstrumentedAttribute[str], value: str, now: datetime
) -> otp.Window:
    count, oldest = db.execute(
        select(func.count(), func.min(OtpCode.created_at)).where(
            column == value,
            OtpCode.created_at > now - otp.RATE_WINDOW,
        )
    ).one()
    return otp.Window(count, oldest)


def request_code(settings: Settings, mailer: Mailer, email: str, client_ip: str) -> None:
    """Mail a new sign-in code to `email`, unless the address or `client_ip` is over its limit."""
    email = normalise_email(email)
    fingerprint = otp.email_fingerprint(settings.secret_key, email)
    code = otp.generate_code()
    mail = sign_in_code_mail(code)
    with unit_of_work() as db:
        # Serializes requests for one address, so concurrent requests cannot all pass the count.
        # The IP limit is a coarse abuse bound and takes no lock: concurrency may overshoot it.
        db.execute(
            text("SELECT pg_advisory_xact_lock(CAST(:space AS integer), hashtext(:email))"),
            {"space": _LOCK_SPACE, "email": email},
        )
        now = _clock(db)
        wait = otp.request_retry_after(
            _window(db, OtpCode.email, email, now),
            _window(db, OtpCode.requested_ip, client_ip, now),
            now,
        )
        if wait is not None:
            log.info(
                "sign-in code refused: rate limit",
                extra={"email_hash": fingerprint, "retry_after": wait},
            )
            raise RateLimited(
                f"too many sign-in codes requested; try again in {wait} seconds",
                retry_after=wait,
                details={"retry_after": wait},
            )
        db.execute(
            update(OtpCode)
            .where(
                OtpCode.email == email,
                OtpCode.consumed_at.is_(None),
                OtpCode.expires_at > now,
            )
            .values(expires_at=now)
        )
        db.add(
            OtpCode(
                email=email,
                code_hash=otp.hash_code(otp.code_key(settings.secret_key), email, code),
                requested_ip=client_ip,
                created_at=now,
                expires_at=now + otp.CODE_LIFETIME,
            )
        )
        db.flush()
        try:
            mailer.send(email, mail.subject, mail.text, mail.html)
        except DependencyUnavailable:
            log.warning("sign-in code not sent", extra={"email_hash": fingerprint})
            raise DependencyUnavailable("smtp", MAIL_FAILED) from None
    log.info("sign-in code sent", extra={"email_hash": fingerprint})


def verify_code(settings: Settings, tokens: TokenSigner, email: str, code: str) -> SignedIn:
    """Spend the code mailed to `email` and sign in (creating the user on first sign-in)."""
    email = normalise_email(email)
    fingerprint = otp.email_fingerprint(settings.secret_key, email)
    key = otp.code_key(settings.secret_key)
    signed_in: SignedIn | None = None
    with unit_of_work() as db:
        # Locking the row serializes concurrent guesses, so every wrong one is counted.
        row = db.execute(
            select(OtpCode)
            .where(OtpCode.email == email)
            .order_by(OtpCode.created_at.desc(), OtpCode.id.desc())
            .limit(1)
            .with_for_update()
        ).scalar()
        now = _clock(db)
        state = (
            None
            if row is None
            else otp.CodeState(row.expires_at, row.failed_attempts, row.consumed_at)
        )
        rejection = otp.unusable(state, now)
        if row is not None and rejection is None:
            if otp.code_matches(key, email, code, row.code_hash):
                row.consumed_at = now
                signed_in = sign_in(db, settings, tokens, email)
            else:
                # Committed with this unit of work even though the call fails: that is the point.
                row.failed_attempts += 1
                rejection = otp.Rejection.WRONG_CODE
    if signed_in is None:
        log.info(
            "sign-in code refused",
            extra={
                "email_hash": fingerprint,
                "reason": str(rejection),
                "failed_attempts": row.failed_attempts if row is not None else None,
            },
        )
        raise AuthenticationFailed(REFUSED)
    log.info(
        "signed in with an emailed code",
        extra={
            "email_hash": fingerprint,
            "user_id": str(signed_in.user.id),
        },
    )
    return signed_in
