"""The one rule every read and write obeys: a live row of the caller's, else NotFound."""

from __future__ import annotations

import uuid
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.errors import NotFound

Row = TypeVar("Row")


def owned(db: Session, model: type[Row], owner: uuid.UUID, row_id: uuid.UUID, what: str) -> Row:
    """The caller's live `model` row `row_id`; another user's, a deleted or a missing one is
    the same NotFound, so nobody learns what others have."""
    row: Any = db.execute(
        select(model).where(
            model.id == row_id,  # type: ignore[attr-defined]
            model.owner_id == owner,  # type: ignore[attr-defined]
            model.deleted_at.is_(None),  # type: ignore[attr-defined]
        )
    ).scalar()
    if row is None:
        raise NotFound(f"no such {what}")
    return row
