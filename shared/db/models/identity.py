"""Schema `canonical`, identity: users, Google identities, OTP codes, OAuth states, sessions."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.models.base import Base

_CANONICAL = {"schema": "canonical"}


class User(Base):
    """A person who signs in; identified by a verified email address (stored lower-cased)."""

    __tablename__ = "users"
    __table_args__ = (
        Index(
            "uq_users_email_live",
            "email",
            unique=True,
            postgresql_where=text("deleted_at IS NULL"),
        ),
        _CANONICAL,
    )

    email: Mapped[str] = mapped_column(String(320))
    display_name: Mapped[str | None] = mapped_column(String(200))
    last_sign_in_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class UserIdentity(Base):
    """An external account (Google `sub`) that signs a user in."""

    __tablename__ = "user_identities"
    __table_args__ = (UniqueConstraint("provider", "subject"), _CANONICAL)

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("canonical.users.id"), index=True)
    provider: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(String(255))


class OtpCode(Base):
    """One emailed sign-in code: only its keyed hash is kept; single use; attempts counted."""

    __tablename__ = "otp_codes"
    __table_args__ = (
        Index("ix_otp_codes_email_created", "email", "created_at"),
        Index("ix_otp_codes_ip_created", "requested_ip", "created_at"),
        _CANONICAL,
    )

    email: Mapped[str] = mapped_column(String(320))
    code_hash: Mapped[str] = mapped_column(String(64))
    requested_ip: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    failed_attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    consumed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class OAuthState(Base):
    """A Google sign-in in progress: `state` (hashed), PKCE verifier, nonce, one use, 10 minutes."""

    __tablename__ = "oauth_states"
    __table_args__ = (UniqueConstraint("state_hash"), _CANONICAL)

    state_hash: Mapped[str] = mapped_column(String(64))
    code_verifier: Mapped[str] = mapped_column(String(128))
    nonce: Mapped[str] = mapped_column(String(128))
    redirect_uri: Mapped[str] = mapped_column(String(2048))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    consumed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class RefreshToken(Base):
    """One refresh token (hashed) of a family; rotated on use, the family revoked on reuse."""

    __tablename__ = "refresh_tokens"
    __table_args__ = (UniqueConstraint("token_hash"), _CANONICAL)

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("canonical.users.id"), index=True)
    family_id: Mapped[uuid.UUID] = mapped_column(index=True)
    token_hash: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
