"""Refresh tokens: opaque, stored hashed, rotated on every use; reuse revokes the whole family."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from shared.auth.keys import derive, keyed_hash
from shared.db.models import RefreshToken

REFRESH_TOKEN_LIFETIME = timedelta(days=7)
COOKIE_NAME = "coinfrs_refresh"
COOKIE_PATH = "/api/v1/auth"


@dataclass(frozen=True)
class Rotation:
    """What presenting a refresh token did: a new token for the user, or a detected reuse."""

    user_id: uuid.UUID | None
    token: str | None
    reused: bool = False


class RefreshTokens:
    """The refresh-token store; every method works inside the caller's unit of work."""

    def __init__(self, secret_key: str) -> None:
        self._key = derive(secret_key, "refresh-token")

    def _hash(self, token: str) -> str:
        return keyed_hash(self._key, token)

    def open(self, db: Session, user_id: uuid.UUID, family_id: uuid.UUID | None = None) -> str:
        """A new refresh token (of a new family unless `family_id` is given)."""
        token = secrets.token_urlsafe(32)
        db.add(
            RefreshToken(
                user_id=user_id,
                family_id=family_id or uuid.uuid4(),
                token_hash=self._hash(token),
                expires_at=datetime.now(UTC) + REFRESH_TOKEN_LIFETIME,
                created_by=user_id,
            )
        )
        db.flush()
        return token

    def rotate(self, db: Session, token: str) -> Rotation:
        """Spend `token` and return its successor; a spent or revoked token revokes its family."""
        now = datetime.now(UTC)
        spent = db.execute(
            update(RefreshToken)
            .where(
                RefreshToken.token_hash == self._hash(token),
                RefreshToken.used_at.is_(None),
                RefreshToken.revoked_at.is_(None),
                RefreshToken.expires_at > now,
            )
            .values(used_at=now)
            .returning(RefreshToken.user_id, RefreshToken.family_id)
        ).first()
        if spent is not None:
            return Rotation(spent.user_id, self.open(db, spent.user_id, spent.family_id))
        known = db.execute(
            select(RefreshToken.family_id, RefreshToken.used_at, RefreshToken.revoked_at).where(
                RefreshToken.token_hash == self._hash(token)
            )
        ).first()
        if known is not None and (known.used_at is not None or known.revoked_at is not None):
            # A token presented twice means one copy was stolen: end every session of the family.
            self._revoke(db, known.family_id, now)
            return Rotation(None, None, reused=True)
        return Rotation(None, None)

    def revoke(self, db: Session, token: str) -> bool:
        """Revoke the family of `token` (logout); False when the token is unknown."""
        family = db.execute(
            select(RefreshToken.family_id).where(RefreshToken.token_hash == self._hash(token))
        ).scalar()
        if family is None:
            return False
        self._revoke(db, family, datetime.now(UTC))
        return True

    @staticmethod
    def _revoke(db: Session, family_id: uuid.UUID, now: datetime) -> None:
        db.execute(
            update(RefreshToken)
            .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=now)
        )
