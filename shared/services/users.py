"""The signed-in user's own profile."""

from __future__ import annotations

import uuid
from datetime import datetime

from shared.db.engine import unit_of_work
from shared.db.models import User
from shared.errors import NotFound
from shared.http.models import ReplyModel


class UserReply(ReplyModel):
    id: uuid.UUID
    email: str
    display_name: str | None
    created_at: datetime

    @classmethod
    def of(cls, user: User) -> UserReply:
        return cls(
            id=user.id, email=user.email, display_name=user.display_name, created_at=user.created_at
        )


def _live(db, user_id: uuid.UUID) -> User:
    user = db.get(User, user_id)
    if user is None or user.deleted_at is not None:
        raise NotFound("no such user")
    return user


def get_me(user_id: uuid.UUID) -> UserReply:
    with unit_of_work() as db:
        return UserReply.of(_live(db, user_id))


def update_me(user_id: uuid.UUID, display_name: str | None) -> UserReply:
    with unit_of_work() as db:
        user = _live(db, user_id)
        user.display_name = display_name
        user.updated_by = user_id
        db.flush()
        db.refresh(user)
        return UserReply.of(user)
