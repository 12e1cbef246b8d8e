"""Sign-in outcomes every method shares: find or create the user, open a session, refresh, logout.

OTP and Google sign-in (shared/services/otp.py, shared/services/google.py) end in `sign_in`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.auth.sessions import RefreshTokens
from shared.auth.tokens import TokenSigner
from shared.config import Settings
from shared.db.engine import unit_of_work
from shared.db.models import User, UserIdentity
from shared.errors import AuthenticationFailed


@dataclass(frozen=True)
class SignedIn:
    """A new session: the access token for the reply, the refresh token for the cookie."""

    user: User
    access_token: str
    expires_in: int
    refresh_token: str


@dataclass(frozen=True)
class Refreshed:
    user_id: uuid.UUID
    access_token: str
    expires_in: int
    refresh_token: str


def normalise_email(email: str) -> str:
    """One spelling per address: trimmed and lower-cased (how users are looked up and stored)."""
    return email.strip().lower()


def _user_for(db: Session, email: str, identity: tuple[str, str] | None) -> User:
    if identity is not None:
        provider, subject = identity
        linked = db.execute(
            select(User)
            .join(UserIdentity, UserIdentity.user_id == User.id)
            .where(
                UserIdentity.provider == provider,
                UserIdentity.subject == subject,
                User.deleted_at.is_(None),
            )
        ).scalar()
        if linked is not None:
            return linked
    user = db.execute(select(User).where(User.email == email, User.deleted_at.is_(None))).scalar()
    if user is None:
        user = User(email=email)
        db.add(user)
        db.flush()
        user.created_by = user.id
    if identity is not None:
        # The same verified email through Google and through OTP is one person.
        db.add(UserIdentity(user_id=user.id, provider=identity[0], subject=identity[1]))
    return user


def sign_in(
    db: Session,
    settings: Settings,
    tokens: TokenSigner,
    email: str,
    identity: tuple[str, str] | None = None,
) -> SignedIn:
    """The user with this verified `email` (created on first sign-in), signed in: a new session.

    `identity` is (provider, subject) of an external account, linked to the user on first use.
    """
    user = _user_for(db, normalise_email(email), identity)
    user.last_sign_in_at = datetime.now(UTC)
    user.updated_by = user.id
    refresh_token = RefreshTokens(settings.secret_key).open(db, user.id)
    access_token, expires_in = tokens.issue(user.id)
    return SignedIn(user, access_token, expires_in, refresh_token)


def refresh(settings: Settings, tokens: TokenSigner, refresh_token: str | None) -> Refreshed:
    """Spend a refresh token for a new access token and a rotated refresh token."""
    if not refresh_token:
        raise AuthenticationFailed("no refresh token; sign in again")
    with unit_of_work() as db:
        rotation = RefreshTokens(settings.secret_key).rotate(db, refresh_token)
        live = rotation.user_id is not None and (
            db.execute(
                select(User.id).where(User.id == rotation.user_id, User.deleted_at.is_(None))
            ).scalar()
            is not None
        )
    if rotation.reused:
        raise AuthenticationFailed(
            "refresh token was already used; every session of this sign-in has been revoked"
        )
    if not live or rotation.token is None:
        raise AuthenticationFailed("refresh token is not valid; sign in again")
    access_token, expires_in = tokens.issue(rotation.user_id)
    return Refreshed(rotation.user_id, access_token, expires_in, rotation.token)


def logout(settings: Settings, refresh_token: str | None) -> None:
    """Revoke the session family of `refresh_token` (a missing or unknown token is a no-op)."""
    if not refresh_token:
        return
    with unit_of_work() as db:
        RefreshTokens(settings.secret_key).revoke(db, refresh_token)


@dataclass(frozen=True)
class CurrentUser:
    """Who is calling: established from a valid access token of a live user."""

    id: uuid.UUID
    email: str


def current_user(tokens: TokenSigner, authorization: str | None) -> CurrentUser:
    """The caller of a request from its `Authorization: Bearer` header."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationFailed("sign-in is required: send Authorization: Bearer <access token>")
    claims = tokens.verify(token.strip())
    with unit_of_work() as db:
        email = db.execute(
            select(User.email).where(User.id == claims.user_id, User.deleted_at.is_(None))
        ).scalar()
    if email is None:
        raise AuthenticationFailed("access token is not valid")
    return CurrentUser(claims.user_id, email)
